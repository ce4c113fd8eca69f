"""The second stage of the two-stage detectors: RoI sampling against ground truth, RoIAlign,
the box head(s), box coding, post-processing and the optional mask part.

`RoIHeads` is Faster / Mask R-CNN's single stage; `CascadeRoIHeads` (Cai & Vasconcelos 2018)
is a list of such stages, each refining the previous stage's boxes. Boxes are xyxy in input
pixels; the classifier's index 0 is the background.
"""
import keras
import tensorflow as tf

from tfdet import ops
from tfdet.losses import positive_count, smooth_l1_loss


# Mask Head passes run in multiples of this many detection slots (add_masks).
MASK_BUCKET = 16
# Inference runs the box head on the first proposals only: the batch's largest valid count
# rounded up to a multiple of this (padding costs box-head work; BENCHMARKS.md).
PROPOSAL_BUCKET = 64


def _bucket(count, step, least, slots):
    """count rounded up to a multiple of step, at least `least`, at most slots (tensors)."""
    return tf.minimum(slots, tf.maximum((count + step - 1) // step * step, least))


def valid_proposals(rois, valid):
    """rois [B, P, 4], valid [B, P] -> the same cut to the batch's largest valid count rounded
    up to PROPOSAL_BUCKET (at most P), when every image's valid proposals come first (as the
    RPN returns them); otherwise unchanged."""
    slots = tf.shape(valid)[1]
    counts = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    prefix = tf.reduce_all(tf.equal(valid, tf.sequence_mask(counts, slots)))
    count = tf.reduce_max(counts)
    bucket = tf.where(prefix, _bucket(count, PROPOSAL_BUCKET, PROPOSAL_BUCKET, slots), slots)
    return rois[:, :bucket], valid[:, :bucket]


def _select(mask_scores, count):
    """Indices [B, count] of the highest entries of mask_scores [B, N] and whether each is
    real (score > 0); N may be smaller than count (then the tail is padding)."""
    n = tf.shape(mask_scores)[1]
    padded = tf.pad(mask_scores, [[0, 0], [0, tf.maximum(count - n, 0)]])
    top, index = tf.math.top_k(padded, count)
    return tf.minimum(index, n - 1), top > 0


def _foreground_deltas(deltas, classes=None):
    """The deltas [..., 4] to decode: a class-agnostic head's foreground slot (index 1 of
    [..., 2, 4]), else the given classes' (0 = background) of [..., K + 1, 4]."""
    if classes is None or deltas.shape[-2] == 2:
        return deltas[..., 1, :]
    return tf.gather(deltas, classes, batch_dims=len(classes.shape))


class RoIHeads(keras.layers.Layer):
    """One RoI stage (Faster R-CNN) plus an optional mask head (Mask R-CNN), given its parts:

    box_head: (pooled [B, R, s, s, C]) -> (logits [B, R, K + 1], deltas [B, R, K + 1, 4] or
      [B, R, 2, 4] class-agnostic); with `feeds_mask_head` (the C4 res5 head) its
      return_features maps are the mask head's input.
    pooler: (features, boxes) -> pooled (ops.RoIPooler: P2-P5 by the FPN level rule, or C4).
    matcher: proposals to ground truth (ops.ArgmaxMatcher at roi_positive_iou).
    sampler: the RoIs of the loss (ops.BalancedSampler: roi_batch_per_image,
      roi_positive_fraction). coder: ops.BoxCoder (box_weights).
    postprocessor: (boxes, scores) -> detections (ops.MultiClassNMS / MultiClassSoftNMS).
    mask_head: pooled -> mask logits [B, R, m, m, K + 1]; mask_pooler: its RoI features
      (None when the box head feeds it).

    settings: the detector's config (a SharedSettings), read at call time:
    roi_smooth_l1_beta (and a cascade's stage loss weights).
    """

    def __init__(self, settings, box_head, pooler, matcher, sampler, coder, postprocessor,
                 mask_head=None, mask_pooler=None, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.box_head = box_head
        self.pooler = pooler
        self.matcher = matcher
        self.sampler = sampler
        self.coder = coder
        self.postprocessor = postprocessor
        self.mask_head = mask_head
        self.mask_pooler = mask_pooler
        self.built = True  # the heads are built by the detector

    @property
    def box_heads(self):
        return [self.box_head]

    # -- pooling -----------------------------------------------------------------------------
    def pool(self, features, rois):
        """The box head's input [B, R, roi_size, roi_size, C] (the pooler's)."""
        return self.pooler(features, rois)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, rois, roi_valid, gt, matcher=None, subsample=True):
        """Labels rois [B, N, 4] against the ground truth with `matcher` (the unit's by
        default: positive >= its IoU, else background; invalid rois and padding never count).
        subsample: the sampler's num_samples per image at its positive fraction (random),
        else every valid roi (the cascade's later stages). Returns rois [B, S, 4], chosen
        [B, S] (a real sample), is_positive [B, S], matched [B, S] (ground-truth index) and
        classes [B, S] (1..K, 0 = background)."""
        matched, labels = (matcher or self.matcher)(rois, gt["boxes"], gt["valid"])
        labels = tf.where(roi_valid, labels, ops.IGNORE)
        if subsample:
            positive, negative = self.sampler(labels)
            priority = (tf.cast(positive, tf.float32) * 2.0
                        + tf.cast(negative, tf.float32)) * (
                1.0 + tf.random.uniform(tf.shape(labels)))
            index, chosen = _select(priority, self.sampler.num_samples)
            is_positive = tf.gather(positive, index, batch_dims=1) & chosen
            matched = tf.gather(matched, index, batch_dims=1)
            rois = tf.gather(rois, index, batch_dims=1)
        else:
            chosen = labels != ops.IGNORE
            is_positive = tf.equal(labels, ops.POSITIVE)
        return {
            "rois": tf.stop_gradient(rois),
            "chosen": chosen,
            "is_positive": is_positive,
            "matched": matched,
            "classes": tf.where(is_positive,
                                tf.gather(gt["classes"], matched, batch_dims=1) + 1, 0),
        }

    def box_losses(self, logits, deltas, sample, gt, coder=None):
        """Softmax CE over the sampled RoIs and smooth-L1 on the positives' deltas (their
        class's, or the foreground's when class-agnostic), both divided by the sampled RoIs
        (averaged over replicas)."""
        c = self.settings
        logits = tf.cast(logits, tf.float32)
        chosen_f = tf.cast(sample["chosen"], tf.float32)
        num_rois = positive_count(chosen_f)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=sample["classes"],
                                                            logits=logits)
        class_deltas = _foreground_deltas(tf.cast(deltas, tf.float32), sample["classes"])
        box_targets = (coder or self.coder).encode(
            tf.gather(gt["boxes"], sample["matched"], batch_dims=1), sample["rois"])
        box_loss = smooth_l1_loss(class_deltas, box_targets, c["roi_smooth_l1_beta"])
        return {
            "rcnn_class_loss": tf.reduce_sum(ce * chosen_f) / num_rois,
            "rcnn_box_loss": tf.reduce_sum(
                box_loss * tf.cast(sample["is_positive"], tf.float32)[..., None]) / num_rois,
        }

    # -- inference ---------------------------------------------------------------------------
    def predict(self, pyramid, rois, valid, images, image_sizes=None, training=False):
        """Detections from the proposals rois [B, P, 4] (valid [B, P]): the detection dict of
        postprocess, plus masks [B, N, m, m] (each detection's class's mask probabilities)
        with a mask head. At inference the box head sees only the valid proposals, in
        buckets (valid_proposals)."""
        if not training:
            rois, valid = valid_proposals(rois, valid)
        logits, deltas = self.box_head(self.pool(pyramid, rois), training=training)
        probs = tf.nn.softmax(tf.cast(logits, tf.float32))
        detections = self.postprocess(images, rois, valid, probs, deltas, image_sizes)
        return self.add_masks(detections, pyramid, training)

    def postprocess(self, images, rois, valid, probs, deltas, image_sizes=None, coder=None):
        """probs [B, R, K + 1] (softmax, background first): class-specific (or the
        class-agnostic foreground) decoding with `coder` (the unit's by default), clipping
        and the post-processor (per-class NMS or soft-NMS)."""
        coder = coder or self.coder
        height, width = ops.clip_limits(images, image_sizes)
        probs = probs[..., 1:] * tf.cast(valid, tf.float32)[..., None]
        deltas = tf.cast(deltas, tf.float32)
        if deltas.shape[-2] == 2:  # class-agnostic: one box [B, R, 4] shared by every class
            boxes = coder.decode(deltas[:, :, 1], rois)
        else:  # class-specific [B, R, K, 4]
            if image_sizes is not None:
                height, width = height[..., None], width[..., None]  # [B, 1, 1]
            boxes = coder.decode(deltas[:, :, 1:], rois[:, :, None, :])
        boxes = ops.clip_boxes(boxes, height, width)
        return self.postprocessor(boxes, probs)

    # -- masks -------------------------------------------------------------------------------
    @property
    def mask_size(self):
        """The side of the predicted masks (the deconv doubles the RoI features' size)."""
        if self.box_head.feeds_mask_head:
            return 2 * self.box_head.feature_size(self.pooler.output_size)
        return 2 * self.mask_pooler.output_size

    def mask_logits(self, pyramid, boxes, training=False):
        """Mask logits [B, N, m, m, K + 1] for boxes [B, N, 4] in input pixels."""
        if self.box_head.feeds_mask_head:
            _, _, features = self.box_head(self.pool(pyramid, boxes), training=training,
                                           return_features=True)
        else:
            features = self.mask_pooler(pyramid, boxes)
        return self.mask_head(features)

    def add_masks(self, detections, pyramid, training=False):
        """The detections with masks [B, N, m, m] (each box's class's mask probabilities;
        zero past each image's num_detections) when there is a mask head. The mask head
        runs on the first `bucket` detection slots only: the batch's largest detection count
        rounded up to a multiple of MASK_BUCKET (at most N), so few detections cost few mask
        head passes (one slot when there is no detection)."""
        if self.mask_head is None:
            return detections
        boxes = tf.stop_gradient(detections["boxes"])
        slots = tf.shape(boxes)[1]
        count = tf.reduce_max(detections["num_detections"])
        bucket = _bucket(count, MASK_BUCKET, 1, slots)  # one slot at least: no empty convs
        mask_logits = self.mask_logits(pyramid, boxes[:, :bucket], training=training)
        # Each detection's mask is the channel of its class (0 is the background).
        class_logits = tf.gather(tf.cast(mask_logits, tf.float32),
                                 detections["classes"][:, :bucket] + 1, axis=4, batch_dims=2)
        valid = tf.range(bucket)[None, :] < detections["num_detections"][:, None]
        masks = tf.sigmoid(class_logits) * tf.cast(valid, tf.float32)[..., None, None]
        size = self.mask_size
        detections["masks"] = tf.ensure_shape(
            tf.pad(masks, [[0, 0], [0, slots - bucket], [0, 0], [0, 0]]),
            [None, boxes.shape[1], size, size])
        return detections

    def mask_loss(self, pyramid, sample, masks, training=True, res5=None):
        """Per-pixel sigmoid cross-entropy of the ground-truth class's mask logits against the
        matched instance's mask (masks [B, M, H, W]) cropped to the RoI (ops.mask_targets),
        averaged over the positive RoIs' pixels (over replicas); at most the sampler's
        positives per image. res5: a C4 box head's res5 maps of the sampled RoIs (the C4
        mask head's input)."""
        index, real = _select(tf.cast(sample["is_positive"], tf.float32),
                              self.sampler.max_positive)
        boxes = tf.gather(sample["rois"], index, batch_dims=1)
        classes = tf.gather(sample["classes"], index, batch_dims=1)
        if res5 is not None:
            mask_logits = self.mask_head(tf.gather(res5, index, batch_dims=1))
        else:
            mask_logits = self.mask_logits(pyramid, boxes, training=training)
        mask_logits = tf.gather(tf.cast(mask_logits, tf.float32), classes, axis=4,
                                batch_dims=2)  # [B, P, m, m]
        size = self.mask_size
        targets = ops.mask_targets(masks, boxes,
                                   tf.gather(sample["matched"], index, batch_dims=1), size=size)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=mask_logits)
        real_f = tf.cast(real, tf.float32)
        count = positive_count(real_f) * size**2
        return tf.reduce_sum(bce * real_f[..., None, None]) / count

    # -- training ----------------------------------------------------------------------------
    def losses(self, images, pyramid, proposals, proposal_valid, gt, masks=None,
               training=True, image_sizes=None):
        """R-CNN classification and box losses over the sampler's RoIs of each image (ground
        truth added to the proposals), plus mask_loss with a mask head (masks: the batch's
        [B, M, H, W]). image_sizes: unused here (a cascade clips its refined boxes to it)."""
        rois = tf.concat([proposals, gt["boxes"]], 1)
        roi_valid = tf.concat([proposal_valid, gt["valid"]], 1)
        sample = self.sample(rois, roi_valid, gt)
        pooled = self.pool(pyramid, sample["rois"])
        res5 = None
        if self.mask_head is not None and self.box_head.feeds_mask_head:
            logits, deltas, res5 = self.box_head(pooled, training=training,
                                                 return_features=True)
        else:
            logits, deltas = self.box_head(pooled, training=training)
        losses = self.box_losses(logits, deltas, sample, gt)
        if self.mask_head is not None:
            losses["mask_loss"] = self.mask_loss(pyramid, sample, masks, training, res5)
        return losses


class CascadeRoIHeads(RoIHeads):
    """Cascade R-CNN's RoI stages: stage i's box head scores and refines the boxes stage
    i - 1 refined (stage 1 reads the proposals).

    Given RoIHeads' parts, with a list per stage for box_heads, matchers (IoU 0.5 / 0.6 /
    0.7) and coders (weights [10, 10, 5, 5], [20, 20, 10, 10], [30, 30, 15, 15]); settings
    adds cascade_loss_weights (1 / 0.5 / 0.25) and class_aware. Class-agnostic heads regress
    one foreground box (Paddle's cascade), class-aware ones a box per class (Paddle's
    CascadeRCNNClsAware: each stage passes on the box of its top foreground class).

    Training: stage 1 samples roi_batch_per_image RoIs from the proposals plus the ground
    truth; each later stage takes the previous stage's sampled RoIs refined by its deltas
    (clipped, empty ones dropped) plus the ground truth again (cascade_add_gt: per stage,
    default every stage as the static zoo; ppdet 2.x adds it to the first only), labelled at
    its own IoU:
    every one of them used (Paddle's is_cascade_rcnn sampling), or sampled again when
    class-aware (Paddle's class-aware assigner samples every stage). Test: each stage scores
    its own input boxes; the detections are the last stage's boxes with the mean of the
    stages' softmax scores. The mask head (Cascade Mask R-CNN) reads the last stage's boxes:
    its positives in training, the detections at test.
    """

    def __init__(self, settings, box_heads, pooler, matchers, sampler, coders,
                 postprocessor, mask_head=None, mask_pooler=None, **kwargs):
        agnostic = not settings.get("class_aware", False)
        if not all(getattr(h, "class_agnostic", False) == agnostic for h in box_heads):
            raise ValueError("CascadeRoIHeads: the stages' box heads must be class-agnostic "
                             "(FCBoxHead(class_agnostic=True)), or class-specific with "
                             "class_aware=True")
        if not len(box_heads) == len(matchers) == len(coders):
            raise ValueError(f"CascadeRoIHeads: {len(box_heads)} box heads, {len(matchers)} "
                             f"matchers and {len(coders)} coders; give one of each per stage")
        super().__init__(settings, box_heads[0], pooler, matchers[0], sampler, coders[-1],
                         postprocessor, mask_head, mask_pooler, **kwargs)
        self.later_box_heads = list(box_heads[1:])
        self.matchers = list(matchers)
        self.coders = list(coders)

    @property
    def box_heads(self):
        return [self.box_head, *self.later_box_heads]

    def _refine(self, deltas, rois, stage, height, width, logits):
        """Stage `stage`'s boxes decoded from its deltas and input rois, clipped: the
        foreground deltas of a class-agnostic head, else those of the class with the highest
        foreground score (logits [..., K + 1])."""
        classes = None
        if deltas.shape[-2] != 2:
            classes = tf.argmax(logits[..., 1:], axis=-1, output_type=tf.int32) + 1
        boxes = self.coders[stage].decode(
            _foreground_deltas(tf.cast(deltas, tf.float32), classes), rois)
        return tf.stop_gradient(ops.clip_boxes(boxes, height, width))

    def stages(self, pyramid, rois, images, image_sizes=None, training=False):
        """The cascade on proposals rois [B, P, 4]: ([each stage's input boxes [B, P, 4]], the
        mean of the stages' softmax [B, P, K + 1], the last stage's deltas [B, P, 2, 4] or
        [B, P, K + 1, 4]); each stage's boxes are clipped to image_sizes (else the input)."""
        height, width = ops.clip_limits(images, image_sizes)
        heads = self.box_heads
        probs, inputs = 0.0, []
        for stage, head in enumerate(heads):
            if stage:
                rois = self._refine(deltas, rois, stage - 1, height, width, logits)
            inputs.append(rois)
            logits, deltas = head(self.pool(pyramid, rois), training=training)
            probs += tf.nn.softmax(tf.cast(logits, tf.float32))
        return inputs, probs / len(heads), deltas

    def predict(self, pyramid, rois, valid, images, image_sizes=None, training=False):
        if not training:
            rois, valid = valid_proposals(rois, valid)
        inputs, probs, deltas = self.stages(pyramid, rois, images, image_sizes, training)
        detections = self.postprocess(images, inputs[-1], valid, probs, deltas, image_sizes,
                                      self.coders[-1])
        return self.add_masks(detections, pyramid, training)

    def losses(self, images, pyramid, proposals, proposal_valid, gt, masks=None,
               training=True, image_sizes=None):
        """Each stage's classification and box losses (rcnn_class_loss_stage1, ...) times its
        cascade_loss_weight, plus mask_loss on the last stage's positives; refined boxes are
        clipped to image_sizes [B, 2] when given (else the input), as the proposals."""
        c = self.settings
        height, width = ops.clip_limits(images, image_sizes)
        losses = {}
        add_gt = c.get("cascade_add_gt") or (True,) * len(self.box_heads)
        for stage, head in enumerate(self.box_heads):
            if stage == 0:
                rois, valid = proposals, proposal_valid
            else:
                rois = self._refine(deltas, sample["rois"], stage - 1, height, width,
                                    tf.stop_gradient(logits))
                nonempty = (rois[..., 2] > rois[..., 0]) & (rois[..., 3] > rois[..., 1])
                valid = sample["chosen"] & nonempty
            if add_gt[stage]:
                rois = tf.concat([rois, gt["boxes"]], 1)
                valid = tf.concat([valid, gt["valid"]], 1)
            sample = self.sample(rois, valid, gt, self.matchers[stage],
                                 subsample=stage == 0 or c["class_aware"])
            logits, deltas = head(self.pool(pyramid, sample["rois"]), training=training)
            weight = c["cascade_loss_weights"][stage]
            for name, value in self.box_losses(logits, deltas, sample, gt,
                                               self.coders[stage]).items():
                losses[f"{name}_stage{stage + 1}"] = value * weight
        if self.mask_head is not None:
            losses["mask_loss"] = self.mask_loss(pyramid, sample, masks, training)
        return losses
