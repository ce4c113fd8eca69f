"""RoIAlign (He et al. 2017) from gather-based bilinear sampling: stock TF ops, XLA-compilable
with a fixed sampling_ratio, differentiable with respect to the features.

    roi_align(features [B, H, W, C], boxes [B, R, 4] xyxy input pixels, output_size,
              spatial_scale=1.0, sampling_ratio=-1, aligned=False) -> [B, R, oh, ow, C]

The values are torchvision.ops.roi_align's on the NCHW transpose: `aligned=False` is the
legacy (Detectron / PaddleDetection) behaviour, RoI sizes clamped to at least one feature
pixel; `aligned=True` shifts by half a pixel. sampling_ratio <= 0 is adaptive,
ceil(roi_size / output_size) samples per bin and axis, as there.

`multilevel_roi_align` assigns each RoI to an FPN level by the canonical rule
(level = floor(4 + log2(sqrt(area) / 224)), clamped) and samples all RoIs in one gather from
the levels' features flattened together, so the cost does not grow with the level count.
"""
import math

import tensorflow as tf


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


def roi_align_flat(flat, boxes, heights, widths, bases, scales, output_size, sampling_ratio,
                    aligned):
    """RoIAlign on features flattened to flat [B, N, C]; each RoI reads the map of size
    heights x widths [B, R] starting at row `bases` [B, R], at `scales` [B, R]. The shared
    core of roi_align, multilevel_roi_align and ops.mask_targets (one instance mask per RoI)."""
    oh, ow = output_size
    boxes = tf.cast(boxes, tf.float32)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    x1, x2 = x1 * scales - offset, x2 * scales - offset
    y1, y2 = y1 * scales - offset, y2 * scales - offset
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = tf.maximum(roi_w, 1.0), tf.maximum(roi_h, 1.0)
    if sampling_ratio > 0:
        grid_h = tf.fill(tf.shape(roi_h), sampling_ratio)
        grid_w = grid_h
        max_h = max_w = sampling_ratio
    else:
        grid_h = tf.cast(tf.math.ceil(roi_h / oh), tf.int32)
        grid_w = tf.cast(tf.math.ceil(roi_w / ow), tf.int32)
        max_h = tf.maximum(tf.reduce_max(grid_h), 1)
        max_w = tf.maximum(tf.reduce_max(grid_w), 1)
    y_lo, y_hi, wy_lo, wy_hi = _axis_samples(y1, roi_h, oh, grid_h, max_h, heights)
    x_lo, x_hi, wx_lo, wx_hi = _axis_samples(x1, roi_w, ow, grid_w, max_w, widths)

    # Per output bin, its taps: 2 rows per sample row and 2 columns per sample column.
    def taps(low, high):  # [B, R, bins, grid] x 2 -> [B, R, bins, 2 * grid]
        return tf.concat([low, high], axis=-1)

    rows, row_w = taps(y_lo, y_hi), taps(wy_lo, wy_hi)
    cols, col_w = taps(x_lo, x_hi), taps(wx_lo, wx_hi)
    # [B, R, oh, ow, 2gh, 2gw]: flat index into `flat` and bilinear weight of each tap.
    index = (bases[..., None, None, None, None]
             + rows[:, :, :, None, :, None] * widths[..., None, None, None, None]
             + cols[:, :, None, :, None, :])
    count = tf.cast(tf.maximum(grid_h * grid_w, 1), tf.float32)
    weight = (row_w[:, :, :, None, :, None] * col_w[:, :, None, :, None, :]
              / count[..., None, None, None, None])
    shape = tf.shape(index)
    batch, positions, channels = tf.shape(flat)[0], tf.shape(flat)[1], tf.shape(flat)[2]
    num_taps = shape[4] * shape[5]
    bins = shape[2] * shape[3]
    # Every RoI's taps as rows of one [B * N, C] table.
    table = tf.reshape(flat, [-1, channels])
    index = index + (tf.range(batch) * positions)[:, None, None, None, None, None]
    index = tf.reshape(index, [-1, bins, num_taps])  # [K = B * R, bins, T]
    weight = tf.reshape(weight, [-1, bins, 1, num_taps])
    out_dtype = table.dtype if table.dtype.is_floating else tf.float32

    def pool(chunk_index, chunk_weight):
        # One gather of every tap, then one batched dot product per bin: [1, T] x [T, C].
        values = tf.gather(table, chunk_index)  # [k, bins, T, C]
        if not values.dtype.is_floating:  # e.g. uint8 masks: gathered small, then cast
            values = tf.cast(values, tf.float32)
        return tf.matmul(tf.cast(chunk_weight, values.dtype), values)[:, :, 0]

    # The gathered taps take K * bins * T * C values: with adaptive sampling, large RoIs
    # make T large (a 1000-RoI FPN batch at 800 x 1333 reached 7 GB in one gather). RoIs go
    # through in chunks of at most _GATHER_BUDGET values; one chunk in the common case.
    rois = tf.shape(index)[0]
    per_roi = tf.maximum(bins * num_taps * channels, 1)
    chunk = tf.clip_by_value(_GATHER_BUDGET // per_roi, 1, tf.maximum(rois, 1))
    chunks = (rois + chunk - 1) // chunk
    pad = chunks * chunk - rois
    index = tf.pad(index, [[0, pad], [0, 0], [0, 0]])
    weight = tf.pad(weight, [[0, pad], [0, 0], [0, 0], [0, 0]])
    index = tf.reshape(index, [chunks, chunk, bins, num_taps])
    weight = tf.reshape(weight, [chunks, chunk, bins, 1, num_taps])
    pooled = tf.map_fn(lambda args: pool(*args), (index, weight),
                       fn_output_signature=tf.TensorSpec(None, out_dtype))
    pooled = tf.reshape(pooled, [-1, bins, channels])[:rois]
    return tf.reshape(pooled, tf.concat([shape[:4], [channels]], 0))


def _pair(size):
    return (size, size) if isinstance(size, int) else tuple(size)


def roi_align(features, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
              aligned=False):
    """features [B, H, W, C], boxes [B, R, 4] xyxy in input pixels -> [B, R, oh, ow, C]."""
    features = tf.convert_to_tensor(features)
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    per_roi = tf.ones(tf.shape(boxes)[:2], tf.int32)
    return roi_align_flat(flat, boxes, per_roi * shape[1], per_roi * shape[2], per_roi * 0,
                           tf.cast(per_roi, tf.float32) * spatial_scale, _pair(output_size),
                           sampling_ratio, aligned)


def roi_levels(boxes, min_level=2, max_level=5, canonical_level=4, canonical_size=224.0):
    """FPN level of each box [..., 4] xyxy: floor(canonical_level + log2(sqrt(area) /
    canonical_size)), clamped to [min_level, max_level] (Lin et al. 2017, eq. 1)."""
    boxes = tf.cast(boxes, tf.float32)
    area = tf.maximum((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]), 0.0)
    level = tf.floor(canonical_level + tf.math.log(tf.sqrt(area) / canonical_size + 1e-8)
                     / math.log(2.0))
    return tf.cast(tf.clip_by_value(level, min_level, max_level), tf.int32)


def multilevel_roi_align(features, boxes, output_size, min_level=2, sampling_ratio=-1,
                         aligned=False, canonical_level=4, canonical_size=224.0):
    """RoIAlign over an FPN: features [P_min_level, ...] each [B, H_l, W_l, C] at stride
    2**level; boxes [B, R, 4] xyxy input pixels -> [B, R, oh, ow, C], each RoI sampled from
    its level by `roi_levels`."""
    max_level = min_level + len(features) - 1
    shapes = [tf.shape(f) for f in features]
    flat = tf.concat([tf.reshape(f, [s[0], s[1] * s[2], s[3]])
                      for f, s in zip(features, shapes)], axis=1)
    heights = tf.stack([s[1] for s in shapes])
    widths = tf.stack([s[2] for s in shapes])
    starts = tf.concat([[0], tf.cumsum(heights * widths)[:-1]], 0)
    level = roi_levels(boxes, min_level, max_level, canonical_level, canonical_size) - min_level
    scales = tf.gather(tf.constant([2.0 ** -(min_level + i) for i in range(len(features))]),
                       level)
    return roi_align_flat(flat, boxes, tf.gather(heights, level), tf.gather(widths, level),
                           tf.gather(starts, level), scales, _pair(output_size),
                           sampling_ratio, aligned)
