"""Multi-scale + flip test-time augmentation with box voting, for any tfdet detector.

    tta = TestTimeAugmentation(model)                     # the static zoo's MultiScaleTEST
    detections = tta(image, image_size)                   # one normalised image, unresized

Each pass resizes the image so its shorter side is one of `scales` (longer side at most
max_long_side), optionally flips it, runs the detector and maps its detections back to the
image's pixels; the passes' detections are merged by per-class NMS (nms_iou) and each kept
box is replaced by the score-weighted mean of the same class's boxes overlapping it by at
least vote_iou (box voting, Detectron's and Paddle's `box_voting`); the max_detections best
are returned. Boxes are xyxy in the given image's pixels.

One difference from Paddle's static multi-scale test: Paddle merges each pass's R-CNN boxes
and class scores before NMS (`return_box_score`); this wrapper merges each pass's
detections after the detector's own post-processing (so it works for every detector), with
the detector's max_detections per pass. Masks are not merged (box detections only).
Everything is stock TensorFlow ops (the passes are unrolled in the graph), so
`tfdet.export` can serve it as the `serving_tta` signature.
"""
import tensorflow as tf

from tfdet import ops

# The static zoo's MultiScaleTEST (cascade_rcnn_cls_aware_r101_vd_fpn_ms_test.yml): shorter
# sides 400..1200 and the single-scale 800, longer side <= 2000, each also flipped.
ZOO_SCALES = (400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
ZOO_MAX_LONG_SIDE = 2000


class TestTimeAugmentation:
    """model: a tfdet detector taking normalised images (and image_sizes, if it clips to
    them); size_divisor: each pass's input is zero-padded to a multiple of it (the row's
    DataConfig.size_divisor)."""

    def __init__(self, model, scales=ZOO_SCALES, max_long_side=ZOO_MAX_LONG_SIDE, flip=True,
                 size_divisor=32, nms_iou=0.5, vote_iou=0.9, score_threshold=0.05,
                 max_detections=100):
        if not scales:
            raise ValueError("TestTimeAugmentation: scales is empty")
        self.model = model
        self.scales = tuple(int(s) for s in scales)
        self.max_long_side = float(max_long_side)
        self.flips = (False, True) if flip else (False,)
        self.size_divisor = int(size_divisor)
        self.nms_iou = float(nms_iou)
        self.vote_iou = float(vote_iou)
        self.score_threshold = float(score_threshold)
        self.max_detections = int(max_detections)

    def _pass(self, image, height, width, short, flip):
        """One scale / flip: (boxes [N, 4] in the image's pixels, scores [N], classes [N]);
        the rows past the detector's count have score 0."""
        from tfdet.detectors import run_detector
        h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        scale = tf.minimum(short / tf.minimum(h, w), self.max_long_side / tf.maximum(h, w))
        new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), 1)
        new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), 1)
        x = tf.image.resize(image[None, :height, :width], tf.stack([new_h, new_w]))
        if flip:
            x = x[:, :, ::-1]
        d = self.size_divisor
        x = tf.pad(x, [[0, 0], [0, (new_h + d - 1) // d * d - new_h],
                       [0, (new_w + d - 1) // d * d - new_w], [0, 0]])
        sizes = tf.cast(tf.stack([new_h, new_w])[None], tf.float32)
        out = run_detector(self.model, x, sizes)
        boxes = tf.cast(out["boxes"][0], tf.float32)
        nw = tf.cast(new_w, tf.float32)
        if flip:
            boxes = tf.stack([nw - boxes[:, 2], boxes[:, 1], nw - boxes[:, 0], boxes[:, 3]], 1)
        factor = tf.stack([nw / w, tf.cast(new_h, tf.float32) / h] * 2)
        boxes = ops.clip_boxes(boxes / factor, h, w)
        valid = tf.range(tf.shape(boxes)[0]) < out["num_detections"][0]
        scores = tf.where(valid, tf.cast(out["scores"][0], tf.float32), 0.0)
        return boxes, scores, tf.cast(out["classes"][0], tf.int32)

    def __call__(self, image, image_size=None):
        """image [H, W, 3] float32, normalised as the detector expects and not resized (its
        top-left image_size (h, w) is the image; default: all of it). Returns the detection
        dict of one image with a batch dimension of 1: boxes [1, max_detections, 4] xyxy in
        the image's pixels, scores, classes int32, num_detections [1] int32."""
        image = tf.convert_to_tensor(image, tf.float32)
        if image_size is None:
            image_size = tf.shape(image)[:2]
        height = tf.cast(image_size[0], tf.int32)
        width = tf.cast(image_size[1], tf.int32)
        parts = [self._pass(image, height, width, s, flip)
                 for s in self.scales for flip in self.flips]
        boxes, scores, classes = (tf.concat(p, 0) for p in zip(*parts))
        return merge_with_voting(boxes, scores, classes, self.nms_iou, self.vote_iou,
                                 self.score_threshold, self.max_detections)


def merge_with_voting(boxes, scores, classes, nms_iou=0.5, vote_iou=0.9, score_threshold=0.05,
                      max_detections=100):
    """Per-class NMS of candidates boxes [M, 4] xyxy, scores [M], classes [M] (those scoring
    <= score_threshold left out, as Paddle's `score > score_thresh`), then box voting: each
    kept box becomes the score-weighted mean of the same class's candidates with IoU >=
    vote_iou with it (itself included). Returns the detection dict with a batch dimension of
    1, padded to max_detections, sorted by score."""
    scores = tf.where(scores > score_threshold, scores, 0.0)
    kept = ops.batched_labeled_nms(boxes[None], scores[None], classes[None],
                                   iou_threshold=nms_iou, score_threshold=score_threshold,
                                   max_total=max_detections)
    top = kept["boxes"][0]  # [K, 4]
    same = tf.equal(kept["classes"][0][:, None], classes[None, :])
    close = ops.box_iou(top, boxes) >= vote_iou
    weights = tf.where(same & close & (scores[None, :] > score_threshold), scores[None, :], 0.0)
    total = tf.reduce_sum(weights, axis=1, keepdims=True)
    voted = tf.matmul(weights, boxes) / tf.maximum(total, 1e-12)
    valid = tf.range(max_detections) < kept["num_detections"][0]
    kept["boxes"] = tf.where(valid[:, None] & (total > 0), voted, top)[None]
    return kept
