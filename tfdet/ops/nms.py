"""Non-maximum suppression: hard (single class, per class, batched with padding) and soft.

Boxes are xyxy; the stock TensorFlow NMS ops are symmetric in x / y, so they take xyxy as is.
All outputs of the batched functions are padded to a static size with a count of valid rows,
so one compiled graph serves every batch and the export holds stock ops only.
"""
import tensorflow as tf

from tfdet.ops import boxes as box_ops


def nms(boxes, scores, iou_threshold=0.5, max_output_size=100, score_threshold=float("-inf")):
    """Greedy NMS of one set of boxes [N, 4] with scores [N] -> kept indices [K] int32, K <= max.

    Indices are in decreasing score order. Boxes with score < score_threshold are dropped.
    """
    boxes = tf.cast(box_ops.as_float(boxes), tf.float32)
    scores = tf.cast(box_ops.as_float(scores), tf.float32)
    return tf.image.non_max_suppression(
        boxes, scores, max_output_size, iou_threshold=iou_threshold,
        score_threshold=score_threshold)


def batched_nms(boxes, scores, iou_threshold=0.5, max_output_size=100,
                score_threshold=float("-inf")):
    """Single-class NMS per image of a batch: boxes [B, N, 4], scores [B, N].

    Returns (indices [B, max_output_size] int32 padded with -1, num_valid [B] int32).
    """
    boxes = tf.cast(box_ops.as_float(boxes), tf.float32)
    scores = tf.cast(box_ops.as_float(scores), tf.float32)

    def one_image(args):
        b, s = args
        idx, n = tf.image.non_max_suppression_padded(
            b, s, max_output_size, iou_threshold=iou_threshold, score_threshold=score_threshold,
            pad_to_max_output_size=True)
        idx = tf.where(tf.range(max_output_size) < n, idx, -1)
        return idx, n

    return tf.map_fn(one_image, (boxes, scores),
                     fn_output_signature=(tf.TensorSpec([max_output_size], tf.int32),
                                          tf.TensorSpec([], tf.int32)))


def batched_multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.05,
                           max_per_class=100, max_total=100, pre_nms_top_k=None):
    """Per-class NMS for a batch, padded to `max_total` detections per image.

    boxes: [B, N, 4] shared by all classes, or [B, N, C, 4] class-specific; scores [B, N, C].
    pre_nms_top_k: only each class's k best boxes enter its NMS (Paddle's nms_top_k).
    Returns a dict: boxes [B, max_total, 4] xyxy, scores [B, max_total], classes
    [B, max_total] int32 (column index into `scores`), num_detections [B] int32; rows past
    num_detections are zero. Detections are sorted by score.
    """
    boxes = tf.cast(box_ops.as_float(boxes), tf.float32)
    scores = tf.cast(box_ops.as_float(scores), tf.float32)
    if pre_nms_top_k:
        k = tf.minimum(pre_nms_top_k, tf.shape(scores)[1])
        kth = tf.math.top_k(tf.transpose(scores, [0, 2, 1]), k).values[..., -1]  # [B, C]
        scores = tf.where(scores >= kth[:, None, :], scores, 0.0)
    if boxes.shape.rank == 3:
        boxes = boxes[:, :, None, :]
    out_boxes, out_scores, out_classes, num = tf.image.combined_non_max_suppression(
        boxes, scores, max_output_size_per_class=max_per_class, max_total_size=max_total,
        iou_threshold=iou_threshold, score_threshold=score_threshold, pad_per_class=False,
        clip_boxes=False)
    return {
        "boxes": out_boxes,
        "scores": out_scores,
        "classes": tf.cast(out_classes, tf.int32),
        "num_detections": tf.cast(num, tf.int32),
    }


def batched_labeled_nms(boxes, scores, classes, iou_threshold=0.5, score_threshold=0.05,
                        max_total=100):
    """Per-class NMS of labelled candidates: boxes [B, N, 4] xyxy, scores [B, N], classes
    [B, N] int32 (each candidate has one class, as after a top-k over (anchor, class) pairs).

    Shifting each class's boxes by class * (largest coordinate + 1) keeps classes apart, so
    one single-class NMS per image gives the per-class result (torchvision's batched_nms) on
    N candidates instead of N x C scores. Returns the dict of `batched_multiclass_nms`.
    """
    boxes = tf.cast(box_ops.as_float(boxes), tf.float32)
    scores = tf.cast(box_ops.as_float(scores), tf.float32)
    offset = tf.reduce_max(boxes) - tf.minimum(tf.reduce_min(boxes), 0.0) + 1.0
    shifted = boxes + (tf.cast(classes, tf.float32) * offset)[..., None]
    index, num = batched_nms(shifted, scores, iou_threshold, max_total, score_threshold)
    valid = index >= 0
    index = tf.maximum(index, 0)
    mask = tf.cast(valid, tf.float32)
    return {
        "boxes": tf.gather(boxes, index, batch_dims=1) * mask[..., None],
        "scores": tf.gather(scores, index, batch_dims=1) * mask,
        "classes": tf.where(valid, tf.gather(tf.cast(classes, tf.int32), index, batch_dims=1),
                            0),
        "num_detections": num,
    }


def multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.05, max_per_class=100,
                   max_total=100):
    """Per-class NMS of one image: boxes [N, 4] or [N, C, 4], scores [N, C].

    Returns the dict of `batched_multiclass_nms` without the batch dimension.
    """
    out = batched_multiclass_nms(
        tf.cast(box_ops.as_float(boxes), tf.float32)[None],
        tf.cast(box_ops.as_float(scores), tf.float32)[None],
        iou_threshold, score_threshold, max_per_class, max_total)
    return {k: v[0] for k, v in out.items()}


def _soft_decay(iou, method, sigma, iou_threshold):
    """Soft-NMS's score factor for a box overlapping the selected one by iou."""
    if method == "gaussian":
        return tf.exp(-tf.square(iou) / sigma)
    if method == "linear":
        return tf.where(iou > iou_threshold, 1.0 - iou, 1.0)
    return tf.where(iou > iou_threshold, 0.0, 1.0)


def soft_nms(boxes, scores, sigma=0.5, score_threshold=0.001, max_output_size=100,
             method="gaussian", iou_threshold=0.3):
    """Soft-NMS (Bodla et al. 2017) of boxes [N, 4] with scores [N].

    Each step keeps the highest-scoring box and decays the others by their IoU with it:
    gaussian: s *= exp(-IoU^2 / sigma) (PaddleDetection's sigma; TensorFlow's own
    `soft_nms_sigma` is half of it), linear: s *= 1 - IoU where IoU > iou_threshold,
    hard: s = 0 where IoU > iou_threshold (plain NMS). Stops at max_output_size boxes or when
    no score reaches score_threshold.
    Returns (indices [K] int32, decayed scores [K]) in selection order, K <= max_output_size.
    """
    if method not in ("gaussian", "linear", "hard"):
        raise ValueError(f"soft_nms: unknown method {method!r} (gaussian, linear or hard)")
    boxes = tf.cast(box_ops.as_float(boxes), tf.float32)
    scores = tf.cast(box_ops.as_float(scores), tf.float32)
    n = tf.shape(scores)[0]
    neg_inf = tf.constant(float("-inf"))

    def cond(step, live, kept, kept_scores):
        return (step < max_output_size) & (n > 0) & (tf.reduce_max(
            tf.concat([live, [neg_inf]], 0)) >= score_threshold)

    def body(step, live, kept, kept_scores):
        best = tf.argmax(live, output_type=tf.int32)
        best_score = live[best]
        iou = box_ops.box_iou(boxes[best][None], boxes)[0]
        factor = _soft_decay(iou, method, sigma, iou_threshold)
        live = tf.where(live > neg_inf, live * factor, neg_inf)
        live = tf.tensor_scatter_nd_update(live, [[best]], [neg_inf])
        # Scores that fell below the threshold are removed, as in the reference.
        live = tf.where(live < score_threshold, neg_inf, live)
        kept = kept.write(step, best)
        kept_scores = kept_scores.write(step, best_score)
        return step + 1, live, kept, kept_scores

    start = tf.where(scores < score_threshold, neg_inf, scores)
    _, _, kept, kept_scores = tf.while_loop(
        cond, body,
        (tf.constant(0), start,
         tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[]),
         tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[])))
    return kept.stack(), kept_scores.stack()


def batched_multiclass_soft_nms(boxes, scores, sigma=0.5, score_threshold=0.01,
                                max_total=300, method="gaussian", iou_threshold=0.3):
    """Per-class soft-NMS for a batch (Paddle's MultiClassSoftNMS): each class of each image
    runs `soft_nms` on its boxes scoring >= score_threshold; the max_total best decayed
    scores over all classes are kept.

    boxes: [B, N, 4] shared by all classes, or [B, N, C, 4] class-specific; scores [B, N, C].
    Every (image, class) pair advances in one vectorised loop of at most max_total steps
    (a class's later selections score lower, so none past max_total can reach the output).
    Returns the dict of `batched_multiclass_nms` (scores are the decayed ones), padded to
    max_total, sorted by score.
    """
    if method not in ("gaussian", "linear", "hard"):
        raise ValueError(f"soft_nms: unknown method {method!r} (gaussian, linear or hard)")
    boxes = tf.cast(box_ops.as_float(boxes), tf.float32)
    scores = tf.cast(box_ops.as_float(scores), tf.float32)
    if boxes.shape.rank == 3:
        boxes = tf.broadcast_to(boxes[:, :, None, :],
                                tf.concat([tf.shape(scores), [4]], 0))
    boxes = tf.transpose(boxes, [0, 2, 1, 3])  # [B, C, N, 4]
    live = tf.transpose(scores, [0, 2, 1])  # [B, C, N]
    neg_inf = tf.constant(float("-inf"))
    live = tf.where(live >= score_threshold, live, neg_inf)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    n = tf.shape(live)[2]

    def cond(step, live, kept, kept_scores):
        return (step < tf.minimum(max_total, n)) & tf.reduce_any(live >= score_threshold)

    def body(step, live, kept, kept_scores):
        best = tf.argmax(live, axis=-1, output_type=tf.int32)  # [B, C]
        best_score = tf.reduce_max(live, axis=-1)
        ok = best_score >= score_threshold
        chosen = tf.gather(boxes, best, batch_dims=2)[..., None, :]  # [B, C, 1, 4]
        lo = tf.maximum(chosen[..., :2], boxes[..., :2])
        hi = tf.minimum(chosen[..., 2:], boxes[..., 2:])
        inter = tf.reduce_prod(tf.maximum(hi - lo, 0.0), axis=-1)
        union = tf.gather(area, best, batch_dims=2)[..., None] + area - inter
        iou = tf.where(union > 0, inter / tf.maximum(union, 1e-12), 0.0)
        factor = _soft_decay(iou, method, sigma, iou_threshold)
        decayed = tf.where(live > neg_inf, live * factor, neg_inf)
        decayed = tf.where(tf.one_hot(best, n, on_value=True, off_value=False), neg_inf,
                           decayed)
        decayed = tf.where(decayed < score_threshold, neg_inf, decayed)
        live = tf.where(ok[..., None], decayed, live)
        slot = tf.equal(tf.range(max_total), step)  # this step's column of [B, C, max_total]
        kept = tf.where(slot & ok[..., None], best[..., None], kept)
        kept_scores = tf.where(slot & ok[..., None], best_score[..., None], kept_scores)
        return step + 1, live, kept, kept_scores

    shape = tf.concat([tf.shape(live)[:2], [max_total]], 0)
    _, _, kept, kept_scores = tf.while_loop(
        cond, body, (tf.constant(0), live, tf.fill(shape, -1), tf.fill(shape, neg_inf)))
    # [B, C, max_total] -> the max_total best of [B, C * max_total].
    batch = tf.shape(live)[0]
    top, position = tf.math.top_k(tf.reshape(kept_scores, [batch, -1]), max_total)
    valid = top > neg_inf
    cls = position // max_total
    index = tf.maximum(tf.gather(tf.reshape(kept, [batch, -1]), position, batch_dims=1), 0)
    cls = tf.where(valid, cls, 0)
    picked = tf.gather_nd(boxes, tf.stack([cls, index], axis=-1), batch_dims=1)
    mask = tf.cast(valid, tf.float32)
    return {
        "boxes": picked * mask[..., None],
        "scores": tf.where(valid, top, 0.0),
        "classes": cls,
        "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
    }


def batched_multiclass_weighted_nms(boxes, scores, iou_threshold=0.3, score_threshold=0.05,
                                    max_total=100, pre_nms_top_k=1000):
    """Box blending (BlazeFace's tie resolution; MediaPipe's WEIGHTED non-max suppression) per
    class for a batch: boxes [B, N, 4] xyxy shared by all classes, scores [B, N, C].

    Per (image, class), over the pre_nms_top_k best candidates scoring >= score_threshold:
    the heads are greedy NMS's picks (IoU > iou_threshold suppresses); every candidate joins
    the first head, in score order, that scores at least as high and overlaps it by IoU >
    iou_threshold (a head joins itself), which is MediaPipe's loop (take the best remaining
    box, cluster the remaining ones overlapping it, repeat). A head's box is its cluster's
    score-weighted mean box; its score stays its own. The max_total best heads over all
    classes are returned as the dict of `batched_multiclass_nms`, sorted by score. Stock ops
    only: one NMS per (image, class) and dense [heads x candidates] overlaps.
    """
    boxes = tf.cast(box_ops.as_float(boxes), tf.float32)
    scores = tf.cast(box_ops.as_float(scores), tf.float32)
    batch = tf.shape(scores)[0]
    num_classes = scores.shape[-1] or tf.shape(scores)[-1]
    k = tf.minimum(pre_nms_top_k, tf.shape(scores)[1])
    top, index = tf.math.top_k(tf.transpose(scores, [0, 2, 1]), k)  # [B, C, k], best first
    candidates = tf.gather(boxes, index, batch_dims=1)  # [B, C, k, 4]
    flat_boxes = tf.reshape(candidates, [-1, k, 4])
    flat_scores = tf.reshape(top, [-1, k])
    live = flat_scores >= score_threshold
    heads, num = batched_nms(flat_boxes, flat_scores, iou_threshold, max_total,
                             score_threshold)  # [BC, M] ranks into the k, -1 = none
    valid = heads >= 0
    safe = tf.maximum(heads, 0)
    head_boxes = tf.gather(flat_boxes, safe, batch_dims=1)  # [BC, M, 4]
    rank = tf.range(k)
    member = ((box_ops.box_iou(head_boxes, flat_boxes) > iou_threshold)
              & (safe[..., None] <= rank)) | (safe[..., None] == rank)
    member &= valid[..., None] & live[:, None, :]  # [BC, M, k]
    first = tf.argmax(tf.cast(member, tf.int32), axis=1, output_type=tf.int32)  # [BC, k]
    joins = tf.reduce_any(member, axis=1)
    weights = (tf.one_hot(first, max_total) * tf.cast(joins, tf.float32)[..., None]
               * flat_scores[..., None])  # [BC, k, M]
    total = tf.reduce_sum(weights, axis=1)  # [BC, M]
    blended = tf.einsum("bkm,bkd->bmd", weights, flat_boxes) / tf.maximum(total, 1e-12)[
        ..., None]
    head_scores = tf.where(valid, tf.gather(flat_scores, safe, batch_dims=1), 0.0)
    # All classes' heads of an image, best max_total first.
    per_image = num_classes * max_total
    all_boxes = tf.reshape(blended, [batch, per_image, 4])
    all_scores = tf.reshape(head_scores, [batch, per_image])
    all_classes = tf.reshape(tf.broadcast_to(tf.range(num_classes)[:, None],
                                             [num_classes, max_total]), [-1])
    best, order = tf.math.top_k(all_scores, tf.minimum(max_total, per_image))
    kept = tf.cast(best > 0, tf.float32)
    out_boxes = tf.gather(all_boxes, order, batch_dims=1) * kept[..., None]
    pad = max_total - tf.shape(best)[1]
    return {
        "boxes": tf.pad(out_boxes, [[0, 0], [0, pad], [0, 0]]),
        "scores": tf.pad(best * kept, [[0, 0], [0, pad]]),
        "classes": tf.pad(tf.where(best > 0, tf.gather(all_classes, order), 0),
                          [[0, 0], [0, pad]]),
        "num_detections": tf.reduce_sum(tf.cast(best > 0, tf.int32), axis=1),
    }


class MultiClassWeightedNMS:
    """A detector's post-processor with box blending per class
    (batched_multiclass_weighted_nms): `nms(boxes [B, N, 4], scores [B, N, C])`."""

    def __init__(self, iou_threshold=0.3, score_threshold=0.05, max_total=100,
                 pre_nms_top_k=1000):
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = float(score_threshold)
        self.max_total = int(max_total)
        self.pre_nms_top_k = int(pre_nms_top_k or 1000)

    def __call__(self, boxes, scores):
        if boxes.shape.rank != 3:
            raise ValueError("box blending takes boxes shared by the classes, [B, N, 4]; got "
                             f"rank {boxes.shape.rank}")
        return batched_multiclass_weighted_nms(boxes, scores, self.iou_threshold,
                                               self.score_threshold, self.max_total,
                                               self.pre_nms_top_k)


class MultiClassNMS:
    """A detector's post-processor: `nms(boxes, scores)` -> the detection dict of
    batched_multiclass_nms (boxes [B, N, 4] or [B, N, C, 4] xyxy, scores [B, N, C]): per
    class the pre_nms_top_k best above score_threshold, NMS at iou_threshold, max_per_class
    per class, the best max_total over all classes."""

    def __init__(self, iou_threshold=0.5, score_threshold=0.05, max_per_class=100,
                 max_total=100, pre_nms_top_k=None):
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = float(score_threshold)
        self.max_per_class = int(max_per_class)
        self.max_total = int(max_total)
        self.pre_nms_top_k = pre_nms_top_k

    def __call__(self, boxes, scores):
        return batched_multiclass_nms(boxes, scores, self.iou_threshold, self.score_threshold,
                                      self.max_per_class, self.max_total, self.pre_nms_top_k)


class MultiClassSoftNMS:
    """A detector's post-processor with Gaussian (or linear / hard) soft-NMS per class:
    `nms(boxes, scores)` -> the dict of batched_multiclass_soft_nms."""

    def __init__(self, sigma=0.5, score_threshold=0.01, max_total=300, method="gaussian"):
        if method not in ("gaussian", "linear", "hard"):
            raise ValueError(f"soft_nms: unknown method {method!r} (gaussian, linear or hard)")
        self.sigma = float(sigma)
        self.score_threshold = float(score_threshold)
        self.max_total = int(max_total)
        self.method = method

    def __call__(self, boxes, scores):
        return batched_multiclass_soft_nms(boxes, scores, self.sigma, self.score_threshold,
                                           self.max_total, self.method)
