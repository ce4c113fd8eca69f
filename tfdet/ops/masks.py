"""Instance-mask ops for Mask R-CNN: training targets from full-image masks, and pasting
per-box masks back into the image.

    mask_targets(masks [B, M, H, W], boxes [B, R, 4] xyxy, matched [B, R], size=28)
        -> [B, R, size, size] binary targets
    paste_masks(masks [B, N, h, w] probabilities, boxes [B, N, 4] xyxy, height, width)
        -> [B, N, height, width]

Both are stock TF ops (gathers and matmuls), so they export to TF Serving.
"""
import tensorflow as tf

from tfdet.ops.roi_align import roi_align_flat


def mask_targets(masks, boxes, matched, size=28, threshold=0.5):
    """The ground-truth mask of each RoI's matched instance, cropped to the RoI and resized
    to size x size by RoIAlign (aligned, one sample per bin, as detectron2 does for bitmasks),
    then binarised at `threshold`.

    masks: [B, M, H, W] (0 / 1, uint8 or float) full-image instance masks; boxes: [B, R, 4]
    xyxy RoIs in the same pixels; matched: [B, R] int32 index of each RoI's instance.
    Each RoI reads its instance straight from the masks (no per-RoI copy of a full mask).
    """
    shape = tf.shape(masks)
    height, width = shape[2], shape[3]
    flat = tf.reshape(masks, [shape[0], shape[1] * height * width, 1])
    per_roi = tf.ones(tf.shape(matched), tf.int32)
    crops = roi_align_flat(flat, boxes, per_roi * height, per_roi * width,
                            tf.cast(matched, tf.int32) * height * width,
                            tf.cast(per_roi, tf.float32), (size, size), 1, True)
    return tf.cast(crops[..., 0] >= threshold, tf.float32)


def _paste_weights(start, end, mask_size, image_size):
    """Bilinear weights [B, N, image_size, mask_size] taking a mask row (or column) of
    mask_size cells spread over [start, end) to image pixel centres; zero outside the mask.

    Image pixel i has centre i + 0.5, at mask coordinate (i + 0.5 - start) / (end - start) *
    mask_size - 0.5 (grid_sample with align_corners=False, zero padding: torchvision's
    paste_masks_in_image)."""
    centres = tf.cast(tf.range(image_size), tf.float32) + 0.5
    extent = tf.maximum(end - start, 1e-6)
    coord = ((centres[None, None, :] - start[..., None]) / extent[..., None]
             * tf.cast(mask_size, tf.float32) - 0.5)  # [B, N, image_size]
    cells = tf.cast(tf.range(mask_size), tf.float32)
    # The tent kernel max(0, 1 - |coord - cell|) is bilinear interpolation; cells outside
    # 0..mask_size-1 are absent, i.e. zero padding.
    return tf.maximum(0.0, 1.0 - tf.abs(coord[..., None] - cells))


def paste_masks(masks, boxes, height, width):
    """Per-box masks [B, N, h, w] placed into [B, N, height, width] image-size masks."""
    masks = tf.cast(masks, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    h, w = tf.shape(masks)[2], tf.shape(masks)[3]
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    rows = _paste_weights(y1, y2, h, height)  # [B, N, H, h]
    cols = _paste_weights(x1, x2, w, width)   # [B, N, W, w]
    return tf.matmul(tf.matmul(rows, masks), cols, transpose_b=True)
