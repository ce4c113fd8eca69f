"""Anchor / proposal to ground-truth matching and balanced positive / negative sampling.

Labels follow detectron2: 1 = positive (foreground), 0 = negative (background), -1 = ignored.
Ground truth arrives padded: `gt_valid` [..., M] marks real boxes; padded columns never match.
"""
import tensorflow as tf

POSITIVE = 1
NEGATIVE = 0
IGNORE = -1


def argmax_match(similarity, positive_threshold, negative_threshold, allow_low_quality=False,
                 gt_valid=None):
    """Matches each row (anchor) of `similarity` [..., N, M] to its best column (ground truth).

    Returns (matched_index [..., N] int32, labels [..., N] int32): an anchor whose best IoU is
    >= positive_threshold is positive, < negative_threshold negative, in between ignored.
    With `allow_low_quality`, for each ground truth the anchors with its highest IoU (ties
    included, IoU > 0) become positive too, keeping their own argmax match (detectron2's
    `set_low_quality_matches_`). With no valid ground truth every anchor is negative and
    matched_index is 0.
    """
    similarity = tf.convert_to_tensor(similarity)
    if gt_valid is None:
        shape = tf.concat([tf.shape(similarity)[:-2], tf.shape(similarity)[-1:]], axis=0)
        gt_valid = tf.ones(shape, tf.bool)
    valid = tf.cast(gt_valid, tf.bool)[..., None, :]  # [..., 1, M]
    # Padded columns get -1 so they never win against a real box (IoU >= 0).
    masked = tf.where(valid, similarity, tf.constant(-1.0, similarity.dtype))
    if masked.shape[-1] == 0:
        shape = tf.shape(masked)[:-1]
        return tf.zeros(shape, tf.int32), tf.fill(shape, NEGATIVE)
    best = tf.reduce_max(masked, axis=-1)
    matched = tf.argmax(masked, axis=-1, output_type=tf.int32)
    labels = tf.where(best >= positive_threshold, POSITIVE,
                      tf.where(best < negative_threshold, NEGATIVE, IGNORE))
    if allow_low_quality:
        best_per_gt = tf.reduce_max(masked, axis=-2, keepdims=True)  # [..., 1, M]
        is_best = (masked == best_per_gt) & valid & (best_per_gt > 0)
        labels = tf.where(tf.reduce_any(is_best, axis=-1), POSITIVE, labels)
    any_gt = tf.reduce_any(valid, axis=-1)[..., 0]  # [...]
    labels = tf.where(any_gt[..., None], labels, NEGATIVE)
    matched = tf.where(any_gt[..., None], matched, 0)
    return matched, tf.cast(labels, tf.int32)


def _first_k(candidates, k, scores):
    """Mask of the (at most) k candidates with the largest scores, per row; k may be a tensor."""
    n = tf.shape(candidates)[-1]
    ranked = tf.where(candidates, scores, -1.0)
    order = tf.argsort(ranked, axis=-1, direction="DESCENDING", stable=True)
    # rank[i] = position of element i in the descending order.
    rank = tf.argsort(order, axis=-1, stable=True)
    k = tf.cast(k, tf.int32)
    if k.shape.rank:  # per-row k
        k = k[..., None]
    return candidates & (rank < tf.minimum(k, n))


def sample_balanced(labels, num_samples, positive_fraction, seed=None):
    """Chooses at most `num_samples` anchors per row of `labels` [..., N] (1 / 0 / -1).

    Up to round(num_samples * positive_fraction) positives are drawn at random, and the
    negatives fill the rest; ignored anchors are never drawn. Returns (positive_mask,
    negative_mask), both [..., N] bool. `seed` (a shape-[2] int tensor or pair) makes the draw
    deterministic through stateless random ops.
    """
    labels = tf.convert_to_tensor(labels)
    if seed is None:
        random = tf.random.uniform(tf.shape(labels))
    else:
        random = tf.random.stateless_uniform(tf.shape(labels), seed=seed)
    positive = tf.equal(labels, POSITIVE)
    negative = tf.equal(labels, NEGATIVE)
    max_positive = int(round(num_samples * positive_fraction))
    chosen_pos = _first_k(positive, max_positive, random)
    num_pos = tf.reduce_sum(tf.cast(chosen_pos, tf.int32), axis=-1)
    chosen_neg = _first_k(negative, num_samples - num_pos, random)
    return chosen_pos, chosen_neg


class ArgmaxMatcher:
    """A detector's matcher: `matcher(boxes [..., N, 4], gt_boxes [..., M, 4], gt_valid)` ->
    (matched [..., N], labels [..., N]) by IoU (argmax_match); xyxy boxes. negative_iou
    defaults to positive_iou (no ignored band, the RoI heads' rule)."""

    def __init__(self, positive_iou, negative_iou=None, allow_low_quality=False):
        self.positive_iou = float(positive_iou)
        self.negative_iou = float(positive_iou if negative_iou is None else negative_iou)
        self.allow_low_quality = bool(allow_low_quality)

    def __call__(self, boxes, gt_boxes, gt_valid=None):
        from tfdet.ops.boxes import box_iou
        return argmax_match(box_iou(boxes, gt_boxes), self.positive_iou, self.negative_iou,
                            self.allow_low_quality, gt_valid)


class BalancedSampler:
    """A detector's sampler: `sampler(labels [..., N])` -> (positive, negative) masks with at
    most num_samples per row, positive_fraction of them positive (sample_balanced)."""

    def __init__(self, num_samples, positive_fraction):
        self.num_samples = int(num_samples)
        self.positive_fraction = float(positive_fraction)

    @property
    def max_positive(self):
        return int(round(self.num_samples * self.positive_fraction))

    def __call__(self, labels, seed=None):
        return sample_balanced(labels, self.num_samples, self.positive_fraction, seed)
