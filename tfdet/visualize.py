"""Pictures of detections: labelled boxes in per-class colours, and ground truth beside them.

Boxes are xyxy in the image's pixels; images are uint8 [H, W, 3] numpy arrays (RGB).
"""
import colorsys

import numpy as np


def class_colors(num_classes):
    """A distinct, fixed RGB colour per class (hues spaced by the golden ratio)."""
    colors = []
    for k in range(num_classes):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.85, 0.95)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors


def class_agnostic_nms(boxes, scores, iou_threshold=0.5):
    """Indices (into the N detections, best first) that survive NMS over all classes at once:
    one box where per-class NMS kept a copy per class. boxes [N, 4] xyxy, scores [N]."""
    import tensorflow as tf
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros([0], np.int64)
    keep = tf.image.non_max_suppression(boxes[:, [1, 0, 3, 2]], np.asarray(scores, np.float32),
                                        len(boxes), iou_threshold)
    return keep.numpy().astype(np.int64)


def draw_detections(image, boxes, classes, scores=None, class_names=None, score_threshold=0.0,
                    num_classes=None):
    """A copy of `image` with each detection at or above score_threshold drawn as a box in its
    class's colour, labelled "name score" on a filled tag. classes: contiguous ids (0..K-1)
    or any ints (colours by value); class_names: a list indexed by class or a dict."""
    from PIL import Image, ImageDraw, ImageFont
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes).astype(np.int64).reshape(-1)
    scores = None if scores is None else np.asarray(scores, np.float32).reshape(-1)
    palette = class_colors(max(int(num_classes or 0), int(classes.max(initial=0)) + 1, 1))
    canvas = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(canvas)
    h, w = image.shape[:2]
    width = max(2, round(max(h, w) / 300))
    font = ImageFont.load_default(size=max(11, round(max(h, w) / 50)))
    order = np.argsort(-scores) if scores is not None else np.arange(len(boxes))
    for i in order[::-1]:  # best last, so it is drawn on top
        if scores is not None and scores[i] < score_threshold:
            continue
        cls = int(classes[i])
        color = palette[cls % len(palette)]
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        name = _name(class_names, cls)
        label = name if scores is None else f"{name} {scores[i]:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw, th = right - left, bottom - top
        ty = y1 - th - 4 if y1 - th - 4 >= 0 else y1  # above the box, else inside it
        draw.rectangle([x1, ty, x1 + tw + 4, ty + th + 4], fill=color)
        draw.text((x1 + 2 - left, ty + 2 - top), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def side_by_side(left, right, gap=8):
    """Two uint8 images next to each other on white (e.g. ground truth | predictions)."""
    h = max(left.shape[0], right.shape[0])
    out = np.full((h, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    out[:left.shape[0], :left.shape[1]] = left
    out[:right.shape[0], left.shape[1] + gap:] = right
    return out


def write_comparisons(dataset, detections, folder, limit=16, score_threshold=0.3):
    """For the first `limit` images of `dataset` (a DetectionDataset with image files): its
    ground truth (left) beside the detections at or above score_threshold (right), one PNG per
    image named <image_id>.png in `folder`. detections: {image_id: (boxes [N, 4] xyxy original
    pixels, classes [N] contiguous, scores [N])} (an evaluator's per_image()). Returns the
    paths written."""
    import os

    import tensorflow as tf
    os.makedirs(folder, exist_ok=True)
    num_classes = len(dataset.class_names)
    empty = (np.zeros([0, 4], np.float32), np.zeros([0], np.int64), np.zeros([0]))
    written = []
    for ex in [e for e in dataset.examples if e.path][:limit]:
        image = tf.io.decode_image(tf.io.read_file(ex.path), channels=3,
                                   expand_animations=False).numpy()
        truth = draw_detections(image, ex.boxes, ex.classes, None, dataset.class_names,
                                num_classes=num_classes)
        boxes, classes, scores = detections.get(ex.image_id, empty)
        predicted = draw_detections(image, boxes, classes, scores, dataset.class_names,
                                    score_threshold, num_classes=num_classes)
        path = os.path.join(folder, f"{ex.image_id}.png")
        tf.io.write_file(path, tf.io.encode_png(side_by_side(truth, predicted)))
        written.append(path)
    return written


def _name(class_names, cls):
    if class_names is None:
        return str(cls)
    if isinstance(class_names, dict):
        return str(class_names.get(cls, cls))
    return str(class_names[cls]) if 0 <= cls < len(class_names) else str(cls)
