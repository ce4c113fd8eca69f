"""RoIAlign (He et al. 2017) from gather-based bilinear sampling: stock TF ops, XLA-compilable
with a fixed sampling_ratio, differentiable with respect to the features.

    roi_align(features [B, H, W, C], boxes [B, R, 4] xyxy input pixels, output_size,
              spatial_scale=1.0, sampling_ratio=-1, aligned=False) -> [B, R, oh, ow, C]

The values are torchvision.ops.roi_align's on the NCHW transpose: `aligned=False` is the
legacy (Detectron / PaddleDetection) behaviour, RoI sizes clamped to at least one feature
pixel; `aligned=True` shifts by half a pixel. sampling_ratio <= 0 is adaptive,
ceil(roi_size / output_size) samples per bin and axis, as there.

`multilevel_roi_align` assigns each RoI to an FPN level by the canonical rule
(level = floor(4 + log2(sqrt(area) / 224)), clamped).

Two computations of the same values, picked by `method`:
- 'crop' (a fixed sampling_ratio g > 0, outside XLA): a bin's g x g samples are points of
  one evenly spaced (oh g) x (ow g) grid per RoI, so `tf.image.crop_and_resize` (a stock,
  multithreaded kernel with a gradient) samples the grid and a g x g average pool makes the
  bins. The maps get a one-pixel replicated border first, which is exactly torchvision's
  clamping of samples in [-1, 0) and (size - 1, size]; samples beyond are zero, as there.
  Each level crops its own RoIs (dynamic_partition / dynamic_stitch).
- 'gather' (adaptive sampling, or under XLA, which has no CropAndResize kernel): every RoI
  sampled from the levels' features flattened together, one gather of bilinear taps per
  chunk of RoIs, so the cost does not grow with the level count.
'auto' (the default) picks 'crop' where it applies.
"""
import math

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

METHODS = ("auto", "crop", "gather")


def _axis_samples(start, size, bins, grid, max_grid, limit):
    """Sample positions along one axis and their bilinear taps.

    start, size, grid, limit: [B, R] (RoI start and size in feature pixels, samples per bin,
    the feature size). Returns (low, high) int32 indices and (w_low, w_high) float weights,
    each [B, R, bins, max_grid], with the weights zero for samples that are out of range or
    past this RoI's grid.
    """
    bin_size = size / bins
    b = tf.range(bins, dtype=tf.float32)[:, None]
    i = tf.range(max_grid, dtype=tf.float32)[None, :]
    grid_f = tf.cast(grid, tf.float32)[..., None, None]
    pos = (start[..., None, None] + b * bin_size[..., None, None]
           + (i + 0.5) * bin_size[..., None, None] / tf.maximum(grid_f, 1.0))
    limit_f = tf.cast(limit, tf.float32)[..., None, None]
    inside = (pos >= -1.0) & (pos <= limit_f) & (i < grid_f)
    pos = tf.maximum(pos, 0.0)
    low = tf.floor(pos)
    at_edge = low >= limit_f - 1.0
    low = tf.where(at_edge, limit_f - 1.0, low)
    high = tf.where(at_edge, low, low + 1.0)
    pos = tf.where(at_edge, low, pos)
    frac = pos - low
    weight = tf.cast(inside, tf.float32)
    return (tf.cast(low, tf.int32), tf.cast(high, tf.int32), (1.0 - frac) * weight,
            frac * weight)


# Most values one gather of RoIAlign taps may hold (64M floats = 256 MB).
_GATHER_BUDGET = 64 * 1024 * 1024


def _window_taps(start, size, bins, grid, max_grid, limit):
    """Adaptive sampling along one axis as a dense window per bin: samples are at most one
    pixel apart, so a bin's taps are the max_grid + 1 consecutive pixels from its first low
    tap. Returns pixels [k, bins, L] int32 (clamped into the map) and their summed bilinear
    weights [k, bins, L] (zero outside the map and past the RoI's own grid), L = max_grid + 1.
    """
    low, high, w_low, w_high = _axis_samples(start, size, bins, grid, max_grid, limit)
    first = tf.reduce_min(low, axis=-1)  # [k, bins]
    length = max_grid + 1
    window = tf.range(length)
    offset = tf.concat([low, high], -1) - first[..., None]  # [k, bins, 2 * max_grid]
    taps = tf.cast(tf.equal(offset[..., None], window), tf.float32)  # one-hot, [.., L]
    weight = tf.reduce_sum(taps * tf.concat([w_low, w_high], -1)[..., None], -2)
    pixels = first[..., None] + window
    return tf.minimum(pixels, limit[:, None, None] - 1), weight


def _pool(table, bases, widths, rows, row_w, cols, col_w, norm):
    """Bins of k RoIs from their row and column taps: rows, row_w [k, oh, Th]; cols, col_w
    [k, ow, Tw] (pixel indices in each RoI's map and bilinear weights); bases, widths [k] (the
    map's first row in `table` [N, C] and its width); norm [k] (one over the samples per bin).
    One gather of every bin's Th x Tw taps, then one batched dot product per bin ([1, T] x
    [T, C]). Returns [k, oh * ow, C] (float32 for an integer table, e.g. uint8 masks)."""
    k = tf.shape(rows)[0]
    oh, th, ow, tw = tf.shape(rows)[1], tf.shape(rows)[2], tf.shape(cols)[1], tf.shape(cols)[2]
    index = (bases[:, None, None, None, None]
             + rows[:, :, None, :, None] * widths[:, None, None, None, None]
             + cols[:, None, :, None, :])  # [k, oh, ow, Th, Tw]
    weight = row_w[:, :, None, :, None] * col_w[:, None, :, None, :] * norm[:, None, None,
                                                                            None, None]
    values = tf.gather(table, tf.reshape(index, [k, oh * ow, th * tw]))  # [k, bins, T, C]
    if not values.dtype.is_floating:  # gathered small, then cast
        values = tf.cast(values, tf.float32)
    weight = tf.cast(tf.reshape(weight, [k, oh * ow, 1, th * tw]), values.dtype)
    return tf.matmul(weight, values)[:, :, 0]


def _roi_frame(boxes, scales, aligned):
    """Each RoI in its map's pixels, as torchvision: boxes [B, R, 4] xyxy float32 times
    scales [B, R], minus half a pixel when aligned, else sides clamped to >= 1.
    Returns x1, y1, width, height, each [B, R]."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = tf.unstack(boxes * scales[..., None] - offset, axis=-1)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = tf.maximum(roi_w, 1.0), tf.maximum(roi_h, 1.0)
    return x1, y1, roi_w, roi_h


def roi_align_flat(flat, boxes, heights, widths, bases, scales, output_size, sampling_ratio,
                    aligned):
    """RoIAlign on features flattened to flat [B, N, C]; each RoI reads the map of size
    heights x widths [B, R] starting at row `bases` [B, R], at `scales` [B, R]. The shared
    core of roi_align, multilevel_roi_align and ops.mask_targets (one instance mask per RoI).

    A fixed sampling_ratio g gathers the 2g x 2g bilinear taps of each bin (static shapes, for
    XLA). Adaptive sampling (<= 0) puts ceil(bin size) samples per bin and axis, at most a
    pixel apart, so a bin reads a dense (g + 1) x (g + 1) window; RoIs go through sorted by
    their grid, so that each chunk's window is its own largest rather than the batch's (the
    largest RoI of a ppdet FPN batch made every RoI read 112 taps per bin; now 9 on average).
    """
    oh, ow = output_size
    bins = oh * ow
    boxes = tf.cast(boxes, tf.float32)
    x1, y1, roi_w, roi_h = _roi_frame(boxes, scales, aligned)
    out_shape = tf.concat([tf.shape(boxes)[:2], [oh, ow, tf.shape(flat)[2]]], 0)
    batch, positions, channels = tf.shape(flat)[0], tf.shape(flat)[1], tf.shape(flat)[2]
    # Every RoI's map as rows of one [B * N, C] table; per-RoI values flattened to [K = B * R].
    table = tf.reshape(flat, [-1, channels])
    out_dtype = table.dtype if table.dtype.is_floating else tf.float32
    bases = bases + (tf.range(batch) * positions)[:, None]
    per_roi = [tf.reshape(v, [-1]) for v in (y1, x1, roi_h, roi_w, heights, widths, bases)]
    rois = tf.shape(per_roi[0])[0]
    if sampling_ratio > 0:
        grid_h = grid_w = tf.fill([rois], sampling_ratio)
        taps = 4 * sampling_ratio * sampling_ratio
    else:
        # ceil(size / bins) samples; none for an empty (aligned) RoI, whose bins are zero.
        grid_h = tf.maximum(tf.cast(tf.math.ceil(per_roi[2] / oh), tf.int32), 0)
        grid_w = tf.maximum(tf.cast(tf.math.ceil(per_roi[3] / ow), tf.int32), 0)
        cost = (grid_h + 1) * (grid_w + 1)
        order = tf.argsort(cost, stable=True)
        per_roi = [tf.gather(v, order) for v in per_roi]
        grid_h, grid_w = tf.gather(grid_h, order), tf.gather(grid_w, order)
        taps = tf.reduce_max(tf.concat([cost, [1]], 0))
    chunk = tf.clip_by_value(_GATHER_BUDGET // tf.maximum(bins * taps * channels, 1), 1,
                             tf.maximum(rois, 1))
    chunks = tf.maximum((rois + chunk - 1) // chunk, 1)
    # Chunks of equal size: the last (or, without RoIs, the only one) is padded with
    # one-pixel RoIs at the map's first pixel.
    pad = chunks * chunk - rois
    y1, x1, roi_h, roi_w, heights, widths, bases, grid_h, grid_w = (
        tf.concat([v, tf.fill([pad], tf.cast(fill, v.dtype))], 0)
        for v, fill in zip(per_roi + [grid_h, grid_w], (0, 0, 1, 1, 1, 1, 0, 1, 1)))

    @tf.autograph.experimental.do_not_convert  # plain TF ops: map_fn need not convert it
    def one_chunk(i):
        part = slice(i * chunk, (i + 1) * chunk)
        gh, gw = grid_h[part], grid_w[part]
        if sampling_ratio > 0:  # 2g taps per axis: static shapes
            g = sampling_ratio
            y_lo, y_hi, wy_lo, wy_hi = _axis_samples(y1[part], roi_h[part], oh, gh, g,
                                                     heights[part])
            x_lo, x_hi, wx_lo, wx_hi = _axis_samples(x1[part], roi_w[part], ow, gw, g,
                                                     widths[part])
            rows, row_w = tf.concat([y_lo, y_hi], -1), tf.concat([wy_lo, wy_hi], -1)
            cols, col_w = tf.concat([x_lo, x_hi], -1), tf.concat([wx_lo, wx_hi], -1)
        else:  # the chunk's own largest window
            rows, row_w = _window_taps(y1[part], roi_h[part], oh, gh, tf.reduce_max(gh),
                                       heights[part])
            cols, col_w = _window_taps(x1[part], roi_w[part], ow, gw, tf.reduce_max(gw),
                                       widths[part])
        return _pool(table, bases[part], widths[part], rows, row_w, cols, col_w,
                     1.0 / tf.cast(tf.maximum(gh * gw, 1), tf.float32))

    pooled = tf.map_fn(one_chunk, tf.range(chunks),
                       fn_output_signature=tf.TensorSpec([None, bins, None], out_dtype))
    pooled = tf.reshape(pooled, [-1, bins, channels])[:rois]
    if sampling_ratio <= 0:  # back from the grid order
        pooled = tf.gather(pooled, tf.math.invert_permutation(order))
    return tf.reshape(pooled, out_shape)


def _in_xla():
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _use_crop(method, sampling_ratio):
    if method not in METHODS:
        raise ValueError(f"roi_align: method must be one of {METHODS}, got {method!r}")
    if method == "crop" and sampling_ratio <= 0:
        raise ValueError("roi_align: method 'crop' needs a fixed sampling_ratio > 0, got "
                         f"{sampling_ratio}")
    return method == "crop" or (method == "auto" and sampling_ratio > 0 and not _in_xla())


def roi_align_crop(maps, boxes, level, scales, output_size, sampling_ratio, aligned):
    """RoIAlign with a fixed sampling_ratio g by crop_and_resize and an average pool.

    maps: [B, H_l, W_l, C] per level; boxes [B, R, 4] xyxy input pixels; level [B, R] (the
    index into maps each RoI reads); scales [B, R] (its map's spatial scale).
    Returns [B, R, oh, ow, C] in the maps' dtype.
    """
    oh, ow = output_size
    g = int(sampling_ratio)
    boxes = tf.cast(boxes, tf.float32)
    x1, y1, roi_w, roi_h = _roi_frame(boxes, scales, aligned)
    # The first and last of the (oh g) evenly spaced samples, +1 for the replicated border.
    step_y, step_x = roi_h / (oh * g), roi_w / (ow * g)
    corners = tf.stack([y1 + 0.5 * step_y, x1 + 0.5 * step_x,
                        y1 + roi_h - 0.5 * step_y, x1 + roi_w - 0.5 * step_x], -1) + 1.0
    batch, rois = tf.shape(boxes)[0], tf.shape(boxes)[1]
    corners = tf.reshape(corners, [-1, 4])
    image = tf.reshape(tf.repeat(tf.range(batch), rois), [-1])
    parts = tf.dynamic_partition(tf.range(batch * rois), tf.reshape(level, [-1]), len(maps))
    pooled = []
    for fmap, part in zip(maps, parts):
        padded = tf.pad(fmap, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        size = tf.cast(tf.shape(padded)[1:3] - 1, tf.float32)  # crop_and_resize's unit
        crops = tf.image.crop_and_resize(
            padded, tf.gather(corners, part) / tf.tile(size, [2]), tf.gather(image, part),
            [oh * g, ow * g], extrapolation_value=0.0)
        pooled.append(tf.nn.avg_pool2d(crops, g, g, "VALID") if g > 1 else crops)
    channels = tf.shape(maps[0])[-1]
    out = tf.dynamic_stitch(parts, pooled)
    return tf.cast(tf.reshape(out, [batch, rois, oh, ow, channels]), maps[0].dtype)


def _pair(size):
    return (size, size) if isinstance(size, int) else tuple(size)


def roi_align(features, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
              aligned=False, method="auto"):
    """features [B, H, W, C], boxes [B, R, 4] xyxy in input pixels -> [B, R, oh, ow, C]."""
    features = tf.convert_to_tensor(features)
    per_roi = tf.ones(tf.shape(boxes)[:2], tf.int32)
    scales = tf.cast(per_roi, tf.float32) * spatial_scale
    if _use_crop(method, sampling_ratio):
        return roi_align_crop([features], boxes, per_roi * 0, scales, _pair(output_size),
                              sampling_ratio, aligned)
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    return roi_align_flat(flat, boxes, per_roi * shape[1], per_roi * shape[2], per_roi * 0,
                           scales, _pair(output_size), sampling_ratio, aligned)


def roi_levels(boxes, min_level=2, max_level=5, canonical_level=4, canonical_size=224.0):
    """FPN level of each box [..., 4] xyxy: floor(canonical_level + log2(sqrt(area) /
    canonical_size)), clamped to [min_level, max_level] (Lin et al. 2017, eq. 1)."""
    boxes = tf.cast(boxes, tf.float32)
    area = tf.maximum((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]), 0.0)
    level = tf.floor(canonical_level + tf.math.log(tf.sqrt(area) / canonical_size + 1e-8)
                     / math.log(2.0))
    return tf.cast(tf.clip_by_value(level, min_level, max_level), tf.int32)


def multilevel_roi_align(features, boxes, output_size, min_level=2, sampling_ratio=-1,
                         aligned=False, canonical_level=4, canonical_size=224.0,
                         method="auto"):
    """RoIAlign over an FPN: features [P_min_level, ...] each [B, H_l, W_l, C] at stride
    2**level; boxes [B, R, 4] xyxy input pixels -> [B, R, oh, ow, C], each RoI sampled from
    its level by `roi_levels`."""
    max_level = min_level + len(features) - 1
    level = roi_levels(boxes, min_level, max_level, canonical_level, canonical_size) - min_level
    scales = tf.gather(tf.constant([2.0 ** -(min_level + i) for i in range(len(features))]),
                       level)
    if _use_crop(method, sampling_ratio):
        return roi_align_crop([tf.convert_to_tensor(f) for f in features], boxes, level,
                              scales, _pair(output_size), sampling_ratio, aligned)
    shapes = [tf.shape(f) for f in features]
    flat = tf.concat([tf.reshape(f, [s[0], s[1] * s[2], s[3]])
                      for f, s in zip(features, shapes)], axis=1)
    heights = tf.stack([s[1] for s in shapes])
    widths = tf.stack([s[2] for s in shapes])
    starts = tf.concat([[0], tf.cumsum(heights * widths)[:-1]], 0)
    return roi_align_flat(flat, boxes, tf.gather(heights, level), tf.gather(widths, level),
                           tf.gather(starts, level), scales, _pair(output_size),
                           sampling_ratio, aligned)


class RoIPooler:
    """A two-stage detector's RoI feature extractor: `pooler(features, boxes [B, R, 4] xyxy)`
    -> [B, R, output_size, output_size, C].

    strides: the strides of the maps it reads, features[0] first. One stride (the C4 layout,
    (16,)): RoIAlign on that map; several (FPN P2-P5, (4, 8, 16, 32)): each RoI from its
    level by roi_levels. Maps beyond len(strides) are ignored (P6 is for the RPN only).
    method: 'auto' / 'crop' / 'gather' (the module docstring).
    """

    def __init__(self, output_size, strides, sampling_ratio=-1, aligned=False, method="auto"):
        self.output_size = int(output_size)
        self.strides = tuple(int(s) for s in strides)
        levels = [math.log2(s) for s in self.strides]
        if any(lv != int(lv) for lv in levels) or any(
                b != a + 1 for a, b in zip(levels, levels[1:])):
            raise ValueError(f"RoIPooler: strides must be consecutive powers of 2, got "
                             f"{self.strides}")
        self.min_level = int(levels[0])
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)
        _use_crop(method, self.sampling_ratio)  # checks the method
        self.method = method

    def __call__(self, features, boxes):
        if len(self.strides) == 1:
            return roi_align(features[0], boxes, self.output_size, 1 / self.strides[0],
                             self.sampling_ratio, self.aligned, self.method)
        return multilevel_roi_align(list(features[:len(self.strides)]), boxes,
                                    self.output_size, self.min_level, self.sampling_ratio,
                                    self.aligned, method=self.method)
