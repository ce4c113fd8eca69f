"""The region proposal unit of the two-stage detectors: anchors, the RPN head, proposal
selection (top-k, decode, clip, NMS per level) and the RPN's training losses.

Boxes are xyxy in input pixels. The RPN head itself runs inside the detector's network (one
Keras graph with the backbone and the neck); this unit turns its outputs into proposals.
"""
from collections.abc import MutableMapping

import keras
import tensorflow as tf

from tfdet import ops
from tfdet.losses import smooth_l1_loss


class SharedSettings(MutableMapping):
    """A detector's config that its units (RPN, RoI heads) share: one mapping that Keras's
    attribute tracking leaves alone (it copies plain dicts), so a change to model.config
    (e.g. the build pass's few proposals) reaches every unit."""

    def __init__(self, values):
        self._values = dict(values)

    def __getitem__(self, key):
        return self._values[key]

    def __setitem__(self, key, value):
        self._values[key] = value

    def __delitem__(self, key):
        del self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return repr(self._values)


class RegionProposalNetwork(keras.layers.Layer):
    """The RPN unit, given its parts: anchor_generator (ops.AnchorGenerator), head (RPNHead),
    matcher (ops.ArgmaxMatcher: anchors to ground truth), sampler (ops.BalancedSampler: the
    anchors of the loss) and coder (ops.BoxCoder).

    settings: the detector's config (a SharedSettings), read at call time (so a change to
    model.config, e.g. the build pass's few proposals, takes effect): train_ /
    test_pre_nms_top_k and _post_nms_top_k, rpn_nms_iou, rpn_min_size, rpn_smooth_l1_beta.
    """

    def __init__(self, settings, anchor_generator, head, matcher, sampler, coder, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.anchor_generator = anchor_generator
        self.head = head
        self.matcher = matcher
        self.sampler = sampler
        self.coder = coder
        self.built = True  # the head is built by the detector's network

    def proposals(self, images, rpn_logits, rpn_deltas, training, anchors=None,
                  image_sizes=None):
        """Per level: top pre-NMS anchors by objectness, decode, clip (to image_sizes [B, 2]
        when given), drop boxes narrower or shorter than rpn_min_size (Paddle's min_size,
        at least 1 when set); NMS within each level; the best post-NMS boxes over all levels.
        Returns (boxes [B, P, 4], valid [B, P]). anchors: the generator's (anchors, counts)
        for this input, if already computed."""
        c = self.settings
        pre = c["train_pre_nms_top_k" if training else "test_pre_nms_top_k"]
        post = c["train_post_nms_top_k" if training else "test_post_nms_top_k"]
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        anchors, counts = anchors or self.anchor_generator(height, width)
        rpn_logits = tf.stop_gradient(tf.cast(rpn_logits, tf.float32))
        rpn_deltas = tf.stop_gradient(tf.cast(rpn_deltas, tf.float32))
        boxes, scores, levels = [], [], []
        start = 0
        for level, count in enumerate(counts):
            logits = rpn_logits[:, start:start + count]
            k = tf.minimum(pre, count)
            top, index = tf.math.top_k(logits, k)
            decoded = self.coder.decode(tf.gather(rpn_deltas[:, start:start + count], index,
                                                  batch_dims=1),
                                        tf.gather(anchors[start:start + count], index))
            boxes.append(decoded)
            scores.append(top)
            levels.append(tf.fill(tf.shape(top), level))
            start += count
        boxes = ops.clip_boxes(tf.concat(boxes, 1), *ops.clip_limits(images, image_sizes))
        scores = tf.sigmoid(tf.concat(scores, 1))
        if c["rpn_min_size"] > 0:
            min_size = max(c["rpn_min_size"], 1.0)
            big = ((boxes[..., 2] - boxes[..., 0] >= min_size)
                   & (boxes[..., 3] - boxes[..., 1] >= min_size))
            scores = tf.where(big, scores, -1.0)
        # NMS keeps levels apart (the level is the label) and needs positive scores.
        nms = ops.batched_labeled_nms(boxes, scores,
                                      tf.concat(levels, 1), iou_threshold=c["rpn_nms_iou"],
                                      score_threshold=0.0, max_total=post)
        valid = tf.sequence_mask(nms["num_detections"], post)
        return nms["boxes"], valid

    def losses_and_proposals(self, images, gt, rpn_logits, rpn_deltas, image_sizes=None):
        """The RPN's objectness (BCE) and box (smooth-L1) losses over the sampler's anchors
        of each image, divided by its num_samples per image (crowd boxes and padding never
        match), and the training proposals, clipped to image_sizes [B, 2] when given:
        (losses, boxes [B, P, 4], valid [B, P])."""
        c = self.settings
        gt_boxes = gt["boxes"]
        rpn_logits = tf.cast(rpn_logits, tf.float32)
        rpn_deltas = tf.cast(rpn_deltas, tf.float32)
        num_images = tf.cast(tf.shape(images)[0], tf.float32)
        anchors_and_counts = self.anchor_generator(tf.shape(images)[1], tf.shape(images)[2])
        anchors = anchors_and_counts[0]
        matched, labels = self.matcher(anchors[None], gt_boxes, gt["valid"])
        positive, negative = self.sampler(labels)
        sampled = tf.cast(positive | negative, tf.float32)
        positive_f = tf.cast(positive, tf.float32)
        normalizer = self.sampler.num_samples * num_images
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive_f, logits=rpn_logits)
        targets = self.coder.encode(tf.gather(gt_boxes, matched, batch_dims=1), anchors[None])
        losses = {
            "rpn_class_loss": tf.reduce_sum(bce * sampled) / normalizer,
            "rpn_box_loss": tf.reduce_sum(
                smooth_l1_loss(rpn_deltas, targets, c["rpn_smooth_l1_beta"])
                * positive_f[..., None]) / normalizer,
        }
        boxes, valid = self.proposals(images, rpn_logits, rpn_deltas, True, anchors_and_counts,
                                      image_sizes)
        return losses, boxes, valid
