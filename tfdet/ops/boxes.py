"""Box formats, overlaps and the box-delta coder.

Inside tfdet boxes are absolute pixels in `xyxy` (x_min, y_min, x_max, y_max) with continuous
coordinates: a box covering pixels 0..9 is [0, 0, 10, 10], so width = x_max - x_min.
Every function takes tensors of shape [..., 4] and works under `tf.function` and XLA.
"""
import math

import tensorflow as tf

FORMATS = ("xyxy", "xywh", "cxcywh", "yxyx")
# Largest log-scale a box delta may have (detectron2's / torchvision's clamp): exp(4.135) = 62.5x.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def as_float(boxes):
    """Tensor of boxes as floating point (python lists and integer tensors become float32)."""
    boxes = tf.convert_to_tensor(boxes)
    return boxes if boxes.dtype.is_floating else tf.cast(boxes, tf.float32)


def _to_xyxy(boxes, fmt):
    a, b, c, d = tf.unstack(boxes, axis=-1)
    if fmt == "xyxy":
        return boxes
    if fmt == "xywh":
        return tf.stack([a, b, a + c, b + d], axis=-1)
    if fmt == "cxcywh":
        return tf.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], axis=-1)
    if fmt == "yxyx":
        return tf.stack([b, a, d, c], axis=-1)
    raise ValueError(f"unknown box format {fmt!r}; expected one of {FORMATS}")


def _from_xyxy(boxes, fmt):
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    if fmt == "xyxy":
        return boxes
    if fmt == "xywh":
        return tf.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)
    if fmt == "cxcywh":
        return tf.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)
    if fmt == "yxyx":
        return tf.stack([y1, x1, y2, x2], axis=-1)
    raise ValueError(f"unknown box format {fmt!r}; expected one of {FORMATS}")


def convert_format(boxes, source, target):
    """Converts boxes [..., 4] between `xyxy`, `xywh`, `cxcywh` and `yxyx`."""
    boxes = as_float(boxes)
    if source == target:
        if source not in FORMATS:
            raise ValueError(f"unknown box format {source!r}; expected one of {FORMATS}")
        return boxes
    return _from_xyxy(_to_xyxy(boxes, source), target)


def normalize_boxes(boxes, height, width):
    """Absolute xyxy pixels -> xyxy divided by the image size (values in [0, 1] inside it)."""
    boxes = as_float(boxes)
    h = tf.cast(height, boxes.dtype)
    w = tf.cast(width, boxes.dtype)
    scale = tf.stack([w, h, w, h], axis=-1)
    return boxes / scale


def denormalize_boxes(boxes, height, width):
    """Normalised xyxy -> absolute xyxy pixels of an image of the given size."""
    boxes = as_float(boxes)
    h = tf.cast(height, boxes.dtype)
    w = tf.cast(width, boxes.dtype)
    return boxes * tf.stack([w, h, w, h], axis=-1)


def box_area(boxes):
    """Area of xyxy boxes [..., 4] -> [...]; inverted boxes have area 0."""
    boxes = as_float(boxes)
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    return tf.maximum(x2 - x1, 0.0) * tf.maximum(y2 - y1, 0.0)


def clip_boxes(boxes, height, width):
    """Clips xyxy boxes to [0, width] x [0, height]; height / width may be tensors of batch shape."""
    boxes = as_float(boxes)
    h = tf.cast(height, boxes.dtype)
    w = tf.cast(width, boxes.dtype)
    upper = tf.stack([w, h, w, h], axis=-1)
    return tf.clip_by_value(boxes, tf.zeros_like(upper), upper)


def clip_limits(images, image_sizes=None):
    """(height, width) to clip a batch's boxes to: each image's [B, 1] from image_sizes [B, 2]
    (h, w in input pixels, e.g. the size before padding), else the input's own (scalars)."""
    if image_sizes is None:
        return tf.shape(images)[1], tf.shape(images)[2]
    sizes = tf.cast(image_sizes, tf.float32)
    return sizes[:, 0:1], sizes[:, 1:2]


def valid_boxes_mask(boxes, min_size=0.0):
    """True where a box is finite and both its sides are longer than `min_size`."""
    boxes = as_float(boxes)
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    return finite & (x2 - x1 > min_size) & (y2 - y1 > min_size)


def _overlaps(a, b, kind, eps):
    """IoU-family overlap of boxes a and b broadcast against each other ([..., 4] each)."""
    ax1, ay1, ax2, ay2 = tf.unstack(a, axis=-1)
    bx1, by1, bx2, by2 = tf.unstack(b, axis=-1)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    inter_w = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1), 0.0)
    inter_h = tf.maximum(tf.minimum(ay2, by2) - tf.maximum(ay1, by1), 0.0)
    inter = inter_w * inter_h
    union = area_a + area_b - inter
    # 0/0 (two empty boxes) gives IoU 0, never NaN.
    iou = tf.math.divide_no_nan(inter, union)
    if kind == "iou":
        return iou
    enc_x1, enc_y1 = tf.minimum(ax1, bx1), tf.minimum(ay1, by1)
    enc_x2, enc_y2 = tf.maximum(ax2, bx2), tf.maximum(ay2, by2)
    if kind == "giou":
        enclosing = (enc_x2 - enc_x1) * (enc_y2 - enc_y1)
        return iou - tf.math.divide_no_nan(enclosing - union, enclosing)
    # DIoU / CIoU: penalty = squared centre distance / squared diagonal of the enclosing box.
    diagonal = tf.square(enc_x2 - enc_x1) + tf.square(enc_y2 - enc_y1) + eps
    centre_dist = tf.square((ax1 + ax2 - bx1 - bx2) / 2) + tf.square((ay1 + ay2 - by1 - by2) / 2)
    diou = iou - centre_dist / diagonal
    if kind == "diou":
        return diou
    if kind == "ciou":
        wa, ha = ax2 - ax1, ay2 - ay1
        wb, hb = bx2 - bx1, by2 - by1
        v = (4 / math.pi**2) * tf.square(
            tf.atan(tf.math.divide_no_nan(wb, hb)) - tf.atan(tf.math.divide_no_nan(wa, ha))
        )
        alpha = tf.stop_gradient(v / (1 - iou + v + eps))
        return diou - alpha * v
    raise ValueError(f"unknown overlap kind {kind!r}")


def _pairwise(a, b, kind, eps=1e-7):
    a = as_float(a)
    b = tf.cast(as_float(b), a.dtype)
    return _overlaps(a[..., :, None, :], b[..., None, :, :], kind, eps)


def box_iou(boxes1, boxes2):
    """Pairwise IoU of xyxy boxes [..., N, 4] x [..., M, 4] -> [..., N, M]."""
    return _pairwise(boxes1, boxes2, "iou")


def generalized_box_iou(boxes1, boxes2):
    """Pairwise generalised IoU (Rezatofighi et al. 2019) -> [..., N, M], values in [-1, 1]."""
    return _pairwise(boxes1, boxes2, "giou")


def distance_box_iou(boxes1, boxes2, eps=1e-7):
    """Pairwise distance IoU (Zheng et al. 2020), as torchvision.ops.distance_box_iou."""
    return _pairwise(boxes1, boxes2, "diou", eps)


def complete_box_iou(boxes1, boxes2, eps=1e-7):
    """Pairwise complete IoU (Zheng et al. 2020), as torchvision.ops.complete_box_iou."""
    return _pairwise(boxes1, boxes2, "ciou", eps)


def elementwise_box_iou(boxes1, boxes2, kind="iou", eps=1e-7):
    """Overlap of matching rows: boxes [..., 4] x [..., 4] -> [...]; kind iou|giou|diou|ciou."""
    boxes1 = as_float(boxes1)
    boxes2 = tf.cast(as_float(boxes2), boxes1.dtype)
    return _overlaps(boxes1, boxes2, kind, eps)


def encode_boxes(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    """Regression targets (dx, dy, dw, dh) taking `anchors` to `boxes`, both xyxy [..., 4].

    dx = wx * (cx - cx_a) / w_a, dw = ww * log(w / w_a), and likewise for y / h; `weights`
    (wx, wy, ww, wh) are the coder weights (10, 10, 5, 5 in Faster R-CNN = 1 / variance).
    """
    boxes = as_float(boxes)
    anchors = tf.cast(as_float(anchors), boxes.dtype)
    wx, wy, ww, wh = weights
    bx, by, bw, bh = tf.unstack(convert_format(boxes, "xyxy", "cxcywh"), axis=-1)
    ax, ay, aw, ah = tf.unstack(convert_format(anchors, "xyxy", "cxcywh"), axis=-1)
    tiny = tf.constant(1e-6, boxes.dtype)
    aw, ah = tf.maximum(aw, tiny), tf.maximum(ah, tiny)
    dx = wx * (bx - ax) / aw
    dy = wy * (by - ay) / ah
    dw = ww * tf.math.log(tf.maximum(bw, tiny) / aw)
    dh = wh * tf.math.log(tf.maximum(bh, tiny) / ah)
    return tf.stack([dx, dy, dw, dh], axis=-1)


def decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0), scale_clamp=DEFAULT_SCALE_CLAMP):
    """Inverse of `encode_boxes`: applies deltas [..., 4] to xyxy anchors -> xyxy boxes.

    dw / dh are clamped at `scale_clamp` (log(1000 / 16)) so exp() cannot overflow.
    """
    deltas = as_float(deltas)
    anchors = tf.cast(as_float(anchors), deltas.dtype)
    wx, wy, ww, wh = weights
    dx, dy, dw, dh = tf.unstack(deltas, axis=-1)
    ax, ay, aw, ah = tf.unstack(convert_format(anchors, "xyxy", "cxcywh"), axis=-1)
    dw = tf.minimum(dw / ww, scale_clamp)
    dh = tf.minimum(dh / wh, scale_clamp)
    cx = dx / wx * aw + ax
    cy = dy / wy * ah + ay
    w = tf.exp(dw) * aw
    h = tf.exp(dh) * ah
    return convert_format(tf.stack([cx, cy, w, h], axis=-1), "cxcywh", "xyxy")


class BoxCoder:
    """A detector's box coder: `encode(boxes, anchors)` -> deltas and `decode(deltas,
    anchors)` -> boxes, xyxy [..., 4], with fixed coder `weights` (wx, wy, ww, wh)."""

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0)):
        self.weights = tuple(float(w) for w in weights)
        if len(self.weights) != 4:
            raise ValueError(f"BoxCoder: weights must be 4 numbers, got {weights!r}")

    def encode(self, boxes, anchors):
        return encode_boxes(boxes, anchors, self.weights)

    def decode(self, deltas, anchors):
        return decode_boxes(deltas, anchors, self.weights)
