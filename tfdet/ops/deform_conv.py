"""Deformable convolution v1 / v2 (Dai et al. 2017, Zhu et al. 2019) from stock TF ops.

Each output position samples its kernel taps at the regular grid position plus a learned
offset, by bilinear interpolation (four gathers), optionally scales each sample by a learned
mask (v2), and contracts the samples with the kernel as one matmul. Values and gradients (with
respect to inputs, offsets, mask and kernel, by TF's autodiff of the gathers) are those of
`torchvision.ops.deform_conv2d` on the NCHW transpose; no custom kernel, so SavedModels serve
anywhere, and the whole op compiles under XLA.
"""
import tensorflow as tf


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def deform_conv2d(inputs, offset, kernel, bias=None, mask=None, strides=1, padding=0,
                  dilation=1, groups=1):
    """inputs [B, H, W, Cin]; kernel [kh, kw, Cin / groups, Cout] (groups: grouped
    convolution as Keras' Conv2D, e.g. ResNeXt's); offset [B, Ho, Wo, 2 * G * kh * kw]
    in torchvision's order (offset group g, then kernel tap k = i * kw + j row-major, then
    dy, dx); mask [B, Ho, Wo, G * kh * kw] (DCNv2, multiplies each sample) or None (DCNv1);
    bias [Cout] or None. The G offset groups split the input channels into G equal parts, each
    sampled at its own offsets. strides / padding / dilation: ints or (h, w) pairs; padding is
    zeros on each side, as torchvision's. Returns [B, Ho, Wo, Cout] with
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1 (and Wo alike).

    A sample at (y, x) is zero when y <= -1, y >= H, x <= -1 or x >= W; inside, each of its
    four neighbours outside the image counts as zero (torchvision's bilinear_interpolate).
    """
    inputs = tf.convert_to_tensor(inputs)
    dtype = inputs.dtype
    offset = tf.cast(offset, dtype)
    kernel = tf.cast(kernel, dtype)
    kh, kw, cin_per_group, cout = kernel.shape
    cin = inputs.shape[-1]
    if cin != cin_per_group * groups or cout % groups:
        raise ValueError(f"kernel {tuple(kernel.shape)} with groups={groups} does not fit "
                         f"{cin} input channels")
    (sh, sw), (ph, pw), (dh, dw) = _pair(strides), _pair(padding), _pair(dilation)
    taps = kh * kw
    if offset.shape[-1] % (2 * taps):
        raise ValueError(f"offset has {offset.shape[-1]} channels, not a multiple of "
                         f"2 * {kh} * {kw}")
    offset_groups = offset.shape[-1] // (2 * taps)
    if cin % offset_groups:
        raise ValueError(f"{cin} input channels do not split into {offset_groups} offset "
                         "groups")
    shape = tf.shape(inputs)
    batch, height, width = shape[0], shape[1], shape[2]
    oshape = tf.shape(offset)
    out_h, out_w = oshape[1], oshape[2]

    # Sampling positions [B, Ho, Wo, K, G]: the grid position of each tap plus its offset.
    offset = tf.reshape(offset, [batch, out_h, out_w, offset_groups, taps, 2])
    offset = tf.transpose(offset, [0, 1, 2, 4, 3, 5])  # [B, Ho, Wo, K, G, 2]
    tap_y = tf.repeat(tf.range(kh) * dh, kw)  # [K]
    tap_x = tf.tile(tf.range(kw) * dw, [kh])
    grid_y = tf.range(out_h) * sh - ph
    grid_x = tf.range(out_w) * sw - pw
    base_y = tf.cast(grid_y[:, None, None] + tap_y[None, None, :], dtype)  # [Ho, 1, K]
    base_x = tf.cast(grid_x[None, :, None] + tap_x[None, None, :], dtype)  # [1, Wo, K]
    y = base_y[None, ..., None] + offset[..., 0]
    x = base_x[None, ..., None] + offset[..., 1]

    # A sample at y <= -1 or y >= H (x alike) has all four neighbours outside: zero, as
    # torchvision's early return gives, without a separate test.
    y0, x0 = tf.floor(y), tf.floor(x)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    y0i, x0i = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1i, x1i = y0i + 1, x0i + 1

    per_group = cin // offset_groups
    flat = tf.reshape(inputs, [-1, per_group])  # rows ((b * H + y) * W + x) * G + g
    b_index = tf.reshape(tf.range(batch), [-1, 1, 1, 1, 1])
    g_index = tf.reshape(tf.range(offset_groups), [1, 1, 1, 1, -1])

    def corner(yi, xi, weight):
        valid = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
        rows = ((b_index * height + tf.clip_by_value(yi, 0, height - 1)) * width
                + tf.clip_by_value(xi, 0, width - 1)) * offset_groups + g_index
        return tf.gather(flat, rows) * (weight * tf.cast(valid, dtype))[..., None]

    if mask is None:
        weight = tf.ones_like(y)
    else:
        weight = tf.reshape(tf.cast(mask, dtype), [batch, out_h, out_w, offset_groups, taps])
        weight = tf.transpose(weight, [0, 1, 2, 4, 3])
    samples = (corner(y0i, x0i, hy * hx * weight) + corner(y0i, x1i, hy * lx * weight)
               + corner(y1i, x0i, ly * hx * weight) + corner(y1i, x1i, ly * lx * weight))
    if groups == 1:
        # [B, Ho, Wo, K, G, Cin / G] -> [B, Ho, Wo, K * Cin]: the kernel's (tap, channel) order.
        columns = tf.reshape(samples, [batch, out_h, out_w, taps * cin])
        out = tf.matmul(columns, tf.reshape(kernel, [taps * cin, cout]))
    else:  # one matmul per conv group: [groups, B Ho Wo, K Cin / groups] x [., ., Cout / groups]
        cg = cin // groups
        columns = tf.reshape(samples, [-1, taps, groups, cg])
        columns = tf.reshape(tf.transpose(columns, [2, 0, 1, 3]), [groups, -1, taps * cg])
        weights = tf.reshape(kernel, [taps, cg, groups, cout // groups])
        weights = tf.reshape(tf.transpose(weights, [2, 0, 1, 3]), [groups, taps * cg, -1])
        out = tf.transpose(tf.matmul(columns, weights), [1, 0, 2])
        out = tf.reshape(out, [batch, out_h, out_w, cout])
    if bias is not None:
        out = out + tf.cast(bias, dtype)
    return out


def deform_conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """The output side of a (deformable) convolution of one input side."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
