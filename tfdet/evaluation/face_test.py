"""PaddleDetection's face test (static `tools/face_eval.py`): each image at its own size, or
its multi-scale test with box voting (`--multi_scale`).

    predict = face_predictor(model, multi_scale=True)
    detections = predict(images [1, H, W, 3], image_sizes [1, 2])    # for evaluate_detector

'original': one pass on the image as it is (Paddle's shrink 1). 'multi_scale', per image:
shrink, max_shrink = get_shrink(h, w) (the largest scale that fits Paddle's memory cap); a
pass at shrink and a flipped one; a pass at 0.5 (or 0.5 max_shrink) kept for faces over 30
px; passes enlarging up to max_shrink kept for faces under 100 px; the pyramid 0.25, 0.75,
1.25, 1.5, 1.75 (those up to max_shrink, each filtered the same way); then bbox_vote over
all of them. Sides are 1 + x2 - x1 in this protocol (Paddle's pixel convention) and a pass at
scale s resizes to (int(h s), int(w s)) and divides its boxes by s. Boxes are xyxy in the
image's pixels.

The host runs the passes (their number depends on the image size) with one compiled
detector for any input size: the face rows detect at any size (SSD.any_input_size).
Resizing is bilinear on the normalised image, where Paddle resizes the uint8 image with cv2
before normalising (a rounding's difference).
"""
import numpy as np
import tensorflow as tf

FACE_TESTS = ("original", "multi_scale")


def get_shrink(height, width):
    """Paddle's (shrink, max_shrink) for an image: the scale under its memory cap (at most
    1) and the largest scale the multi-scale test enlarges to (truncated to two decimals as
    Paddle's get_round does, then reduced by its steps)."""
    max_shrink_v1 = (0x7fffffff / 577.0 / (height * width)) ** 0.5
    max_shrink_v2 = ((678 * 1024 * 2.0 * 2.0) / (height * width)) ** 0.5
    value = min(max_shrink_v1, max_shrink_v2)
    before, _, after = str(value).partition(".")
    if len(after) >= 3:  # Paddle truncates the decimal string to two places
        value = float(f"{before}.{after[:2]}")
    max_shrink = value - 0.3
    if 1.5 <= max_shrink < 2:
        max_shrink -= 0.1
    elif 2 <= max_shrink < 3:
        max_shrink -= 0.2
    elif 3 <= max_shrink < 4:
        max_shrink -= 0.3
    elif 4 <= max_shrink < 5:
        max_shrink -= 0.4
    elif max_shrink >= 5:
        max_shrink -= 0.5
    elif max_shrink <= 0.1:
        max_shrink = 0.1
    return min(max_shrink, 1), max_shrink


def bbox_vote(det, vote_iou=0.3, keep=750, min_score=0.01):
    """Paddle's face bbox_vote over det [N, 5] (x1, y1, x2, y2, score): from the best score
    down, the remaining boxes overlapping it by IoU >= vote_iou (areas with +1 sides) form a
    cluster that becomes its score-weighted mean box with the cluster's best score. As in
    Paddle, a one-box cluster is dropped unless it is the last box left. The first `keep`,
    those scoring >= min_score. -> [M, 5] float64."""
    det = np.asarray(det, np.float64).reshape(-1, 5)
    det = det[det[:, 4].argsort()[::-1]]  # Paddle's order, ties included
    out = []
    while len(det):
        area = (det[:, 2] - det[:, 0] + 1) * (det[:, 3] - det[:, 1] + 1)
        w = np.maximum(0.0, np.minimum(det[0, 2], det[:, 2])
                       - np.maximum(det[0, 0], det[:, 0]) + 1)
        h = np.maximum(0.0, np.minimum(det[0, 3], det[:, 3])
                       - np.maximum(det[0, 1], det[:, 1]) + 1)
        inter = w * h
        merge = inter / (area[0] + area - inter) >= vote_iou
        cluster, det = det[merge], det[~merge]
        if len(cluster) <= 1:
            if not len(det):
                out.append(cluster)
            continue
        weights = cluster[:, 4:]
        box = (cluster[:, :4] * weights).sum(0) / weights.sum()
        out.append(np.append(box, cluster[:, 4].max())[None])
    dets = np.concatenate(out, 0)[:keep] if out else np.zeros((0, 5))
    return dets[dets[:, 4] >= min_score]


def _sides(det):
    return det[:, 2] - det[:, 0] + 1, det[:, 3] - det[:, 1] + 1


def _big(det):  # a shrunk pass keeps faces over 30 px
    return det[np.maximum(*_sides(det)) > 30]


def _small(det):  # an enlarged pass keeps faces under 100 px
    return det[np.minimum(*_sides(det)) < 100]


class FaceTest:
    """detect(images [1, h, w, 3] float32) -> the detection dict (boxes in input pixels);
    mode: 'original' or 'multi_scale' (see the module docstring). Call with one normalised,
    unresized image [H, W, 3] (and its size, if padded): [N, 5] float64 (x1, y1, x2, y2,
    score) in the image's pixels."""

    def __init__(self, detect, mode="original"):
        if mode not in FACE_TESTS:
            raise ValueError(f"face test must be one of {FACE_TESTS}, got {mode!r}")
        self.detect = detect
        self.mode = mode

    def _pass(self, image, shrink, flip=False):
        height, width = image.shape[:2]
        x = image[None]
        if shrink != 1:
            size = [max(int(height * shrink), 1), max(int(width * shrink), 1)]
            x = tf.image.resize(x, size)
        if flip:
            x = x[:, :, ::-1]
        out = self.detect(tf.convert_to_tensor(x, tf.float32))
        n = int(out["num_detections"][0])
        boxes = np.asarray(out["boxes"][0, :n], np.float64) / shrink
        if flip:
            boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                              boxes[:, 3]], 1)
        return np.concatenate([boxes, np.asarray(out["scores"][0, :n], np.float64)[:, None]],
                              1)

    def __call__(self, image, image_size=None):
        image = np.asarray(image, np.float32)
        if image_size is not None:
            image = image[:int(image_size[0]), :int(image_size[1])]
        if self.mode == "original":
            return self._pass(image, 1)
        shrink, max_shrink = get_shrink(*image.shape[:2])
        passes = [self._pass(image, shrink), self._pass(image, shrink, flip=True)]
        # multi_scale_test: a shrunk pass for big faces, enlarged ones for small faces
        st = 0.5 if max_shrink >= 0.75 else 0.5 * max_shrink
        passes.append(_big(self._pass(image, st)))
        bt = min(2, max_shrink) if max_shrink > 1 else (st + max_shrink) / 2
        enlarged = [self._pass(image, bt)]
        if max_shrink > 2:
            bt *= 2
            while bt < max_shrink:
                enlarged.append(self._pass(image, bt))
                bt *= 2
            enlarged.append(self._pass(image, max_shrink))
        enlarged = np.concatenate(enlarged, 0)
        passes.append(_small(enlarged) if bt > 1 else _big(enlarged))
        # multi_scale_test_pyramid
        passes.append(_big(self._pass(image, 0.25)))
        for scale in (0.75, 1.25, 1.5, 1.75):
            if scale <= max_shrink:
                det = self._pass(image, scale)
                passes.append(_small(det) if scale > 1 else _big(det))
        return bbox_vote(np.concatenate(passes, 0))


def face_predictor(model, mode="original"):
    """predict(images [1, H, W, 3], image_sizes [1, 2]) -> the detection dict (one class,
    boxes in the image's pixels) of FaceTest on `model` (a face row, which detects at any
    size), for evaluate_detector on an unresized one-image pipeline
    (Experiment.unresized_pipeline)."""
    from tfdet.evaluation.runner import compiled_predictor
    if not getattr(model, "any_input_size", False):
        raise ValueError(f"the face test runs each image at its own size; {model.name} "
                         f"detects at {getattr(model, 'fixed_input_size', '?')} only")
    compiled = compiled_predictor(model)

    def detect(images):
        sizes = tf.cast(tf.shape(images)[1:3][None], tf.float32)
        return compiled(images, sizes)

    test = FaceTest(detect, mode)

    def predict(images, image_sizes):
        det = test(np.asarray(images)[0], np.asarray(image_sizes)[0])
        n = len(det)
        return {"boxes": tf.constant(det[None, :, :4], tf.float32),
                "scores": tf.constant(det[None, :, 4], tf.float32),
                "classes": tf.zeros([1, n], tf.int32),
                "num_detections": tf.constant([n], tf.int32)}
    return predict
