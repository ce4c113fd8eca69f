"""Faster R-CNN (Ren et al. 2015): ResNet + FPN P2-P6 + RPN + RoIAlign + 2fc box head
(Lin et al. 2017), or the C4 form: RPN on C4, 14x14 RoIAlign on C4 and res5 as the RoI head.

`model(images)` takes normalised images [B, H, W, 3] (H, W multiples of 32) and returns the
detection dict: boxes [B, max_detections, 4] xyxy in input pixels, scores, classes int32
(contiguous 0..K-1), num_detections int32. `compute_losses(batch)` returns the RPN and R-CNN
losses. Defaults follow REFERENCE.md's faster_rcnn_r50_fpn_1x.
"""
import keras
import tensorflow as tf

from tfdet import ops
from tfdet.backbones import resnet, resnet_stage
from tfdet.detectors.ground_truth import ground_truth
from tfdet.detectors.keras_training import KerasTrainingMixin
from tfdet.heads import FCBoxHead, Res5BoxHead, RPNHead
from tfdet.losses import replica_mean, smooth_l1_loss
from tfdet.necks import fpn


def _select(mask_scores, count):
    """Indices [B, count] of the highest entries of mask_scores [B, N] and whether each is
    real (score > 0); N may be smaller than count (then the tail is padding)."""
    n = tf.shape(mask_scores)[1]
    padded = tf.pad(mask_scores, [[0, 0], [0, tf.maximum(count - n, 0)]])
    top, index = tf.math.top_k(padded, count)
    return tf.minimum(index, n - 1), top > 0


@keras.saving.register_keras_serializable("tfdet")
class FasterRCNN(KerasTrainingMixin, keras.Model):
    """Faster R-CNN; see the module docstring. num_classes excludes the background.

    neck 'fpn' (P2-P6, one anchor size per level) or 'c4' (one level at stride 16 with every
    anchor size, res5 on 14x14 RoIs as the box head; its zoo settings come from the registry).
    """

    # Settings for the forward pass that creates the weights (tfdet.models.get): a few
    # proposals through the heads; the zoo's 1000 through a C4 row's res5 took 10 GB and 14 s.
    build_settings = {"test_pre_nms_top_k": 32, "test_post_nms_top_k": 8}

    def __init__(self, num_classes=80, depth=50, variant="b", groups=1, group_width=64,
                 norm="affine", freeze_at=2, neck="fpn", fpn_channels=256,
                 anchor_sizes=(32, 64, 128, 256, 512),
                 ratios=(0.5, 1.0, 2.0), rpn_positive_iou=0.7, rpn_negative_iou=0.3,
                 rpn_batch_per_image=256, rpn_positive_fraction=0.5,
                 train_pre_nms_top_k=2000, train_post_nms_top_k=2000,
                 test_pre_nms_top_k=1000, test_post_nms_top_k=1000, rpn_nms_iou=0.7,
                 rpn_smooth_l1_beta=1 / 9, roi_batch_per_image=512, roi_positive_fraction=0.25,
                 roi_positive_iou=0.5, roi_size=7, sampling_ratio=2, aligned=False,
                 fc_dim=1024, box_weights=(10.0, 10.0, 5.0, 5.0), roi_smooth_l1_beta=1.0,
                 score_threshold=0.05, nms_iou=0.5, max_detections=100, rpn_min_size=0.0,
                 dcn_stages=(), **kwargs):
        super().__init__(**kwargs)
        config = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        config.update(anchor_sizes=tuple(anchor_sizes), ratios=tuple(ratios),
                      box_weights=tuple(box_weights),
                      dcn_stages=tuple(int(v) for v in dcn_stages))
        self.config = config
        self.num_classes = num_classes
        if neck not in ("fpn", "c4"):
            raise ValueError(f"neck must be 'fpn' or 'c4', got {neck!r}")
        if neck == "fpn":
            self.anchor_generator = ops.AnchorGenerator(
                strides=(4, 8, 16, 32, 64), sizes=tuple(anchor_sizes), scales=(1.0,),
                ratios=tuple(ratios))
            body = resnet(depth, variant, groups, group_width, norm, freeze_at,
                          dcn_stages=dcn_stages)
            features = fpn(body.outputs, 2, 6, fpn_channels, extra="pool")
            head_channels = fpn_channels
        else:
            base = anchor_sizes[0]
            self.anchor_generator = ops.AnchorGenerator(
                strides=(16,), sizes=(base,), scales=tuple(s / base for s in anchor_sizes),
                ratios=tuple(ratios))
            if dcn_stages:
                raise ValueError("dcn_stages: deformable convs are built for FPN rows only "
                                 "(the zoo has no C4 DCN row)")
            body = resnet(depth, variant, groups, group_width, norm, freeze_at, num_stages=3)
            features = body.outputs[-1:]
            head_channels = features[0].shape[-1]
        self.rpn_head = RPNHead(self.anchor_generator.num_anchors_per_location, head_channels,
                                name="rpn_head")
        rpn_logits, rpn_deltas = self.rpn_head(features)
        self.network = keras.Model(body.input, [*features, rpn_logits, rpn_deltas],
                                   name="faster_rcnn_network")
        if neck == "fpn":
            self.box_head = FCBoxHead(num_classes, fc_dim, name="box_head")
        else:
            res5 = resnet_stage(5, head_channels, depth, variant, groups, group_width, norm)
            self.box_head = Res5BoxHead(res5, num_classes, name="box_head")
        self.box_head.build((None, None, roi_size, roi_size, head_channels))

    # -- region proposals --------------------------------------------------------------------
    def proposals(self, images, rpn_logits, rpn_deltas, training, anchors=None,
                  image_sizes=None):
        """Per level: top pre-NMS anchors by objectness, decode, clip (to image_sizes [B, 2]
        when given), drop boxes narrower or shorter than rpn_min_size (Paddle's min_size,
        at least 1 when set); NMS within each level; the best post-NMS boxes over all levels.
        Returns (boxes [B, P, 4], valid [B, P]). anchors: the generator's (anchors, counts)
        for this input, if already computed."""
        c = self.config
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
            decoded = ops.decode_boxes(tf.gather(rpn_deltas[:, start:start + count], index,
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

    def roi_features(self, features, rois):
        """[B, R, roi_size, roi_size, C]: from P2-P5 by the FPN level rule, or from C4."""
        c = self.config
        if c["neck"] == "c4":
            return ops.roi_align(features[0], rois, c["roi_size"], 1 / 16,
                                 c["sampling_ratio"], c["aligned"])
        return ops.multilevel_roi_align(features[:4], rois, c["roi_size"], min_level=2,
                                        sampling_ratio=c["sampling_ratio"],
                                        aligned=c["aligned"])

    # -- inference ---------------------------------------------------------------------------
    def call(self, images, training=False, image_sizes=None):
        """image_sizes: optional [B, 2] (h, w) of each image before padding; proposals and
        detections are clipped to it (as Paddle clips to im_shape), else to the input."""
        *pyramid, rpn_logits, rpn_deltas = self.network(images, training=training)
        rois, valid = self.proposals(images, rpn_logits, rpn_deltas, training=False,
                                     image_sizes=image_sizes)
        logits, deltas = self.box_head(self.roi_features(pyramid, rois), training=training)
        return self.postprocess(images, rois, valid, logits, deltas, image_sizes)

    def postprocess(self, images, rois, valid, logits, deltas, image_sizes=None):
        """Softmax, class-specific decoding, clipping and per-class NMS."""
        c = self.config
        height, width = ops.clip_limits(images, image_sizes)
        if image_sizes is not None:
            height, width = height[..., None], width[..., None]  # [B, 1, 1] for [B, R, K, 4]
        probs = tf.nn.softmax(tf.cast(logits, tf.float32))[..., 1:]
        probs *= tf.cast(valid, tf.float32)[..., None]
        boxes = ops.decode_boxes(tf.cast(deltas, tf.float32)[:, :, 1:], rois[:, :, None, :],
                                 c["box_weights"])
        boxes = ops.clip_boxes(boxes, height, width)
        return ops.batched_multiclass_nms(
            boxes, probs, iou_threshold=c["nms_iou"], score_threshold=c["score_threshold"],
            max_per_class=c["max_detections"], max_total=c["max_detections"])

    # -- training ----------------------------------------------------------------------------
    def compute_losses(self, batch, training=True):
        """RPN objectness (BCE) and box (smooth-L1) losses over 256 sampled anchors per image;
        R-CNN classification (softmax CE) and class-specific box losses over 512 sampled RoIs
        per image (ground truth added to the proposals). Crowd boxes and padding never match.
        """
        gt = ground_truth(batch)
        *pyramid, rpn_logits, rpn_deltas = self.network(batch["images"], training=training)
        losses, sample = self.rpn_losses_and_rois(batch["images"], gt, rpn_logits, rpn_deltas)
        logits, deltas = self.box_head(self.roi_features(pyramid, sample["rois"]),
                                       training=training)
        losses.update(self.box_losses(logits, deltas, sample, gt))
        losses["total_loss"] = tf.add_n(list(losses.values()))
        return losses

    def rpn_losses_and_rois(self, images, gt, rpn_logits, rpn_deltas):
        """RPN losses, and the sampled RoIs for the box head: a dict of rois [B, S, 4],
        chosen [B, S] (a real sample), is_positive [B, S], matched [B, S] (ground-truth
        index) and classes [B, S] (1..K, 0 = background), S = roi_batch_per_image."""
        c = self.config
        gt_boxes, gt_valid = gt["boxes"], gt["valid"]
        rpn_logits = tf.cast(rpn_logits, tf.float32)
        rpn_deltas = tf.cast(rpn_deltas, tf.float32)
        num_images = tf.cast(tf.shape(images)[0], tf.float32)

        # RPN: anchors vs ground truth.
        anchors_and_counts = self.anchor_generator(tf.shape(images)[1], tf.shape(images)[2])
        anchors = anchors_and_counts[0]
        matched, labels = ops.argmax_match(ops.box_iou(anchors[None], gt_boxes),
                                           c["rpn_positive_iou"], c["rpn_negative_iou"],
                                           allow_low_quality=True, gt_valid=gt_valid)
        positive, negative = ops.sample_balanced(labels, c["rpn_batch_per_image"],
                                                 c["rpn_positive_fraction"])
        sampled = tf.cast(positive | negative, tf.float32)
        positive_f = tf.cast(positive, tf.float32)
        normalizer = c["rpn_batch_per_image"] * num_images
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive_f, logits=rpn_logits)
        targets = ops.encode_boxes(tf.gather(gt_boxes, matched, batch_dims=1), anchors[None])
        losses = {
            "rpn_class_loss": tf.reduce_sum(bce * sampled) / normalizer,
            "rpn_box_loss": tf.reduce_sum(
                smooth_l1_loss(rpn_deltas, targets, c["rpn_smooth_l1_beta"])
                * positive_f[..., None]) / normalizer,
        }

        # R-CNN: proposals plus ground truth, sampled.
        proposals, proposal_valid = self.proposals(images, rpn_logits, rpn_deltas, True,
                                                   anchors_and_counts)
        rois = tf.concat([proposals, gt_boxes], 1)
        roi_valid = tf.concat([proposal_valid, gt_valid], 1)
        matched, labels = ops.argmax_match(ops.box_iou(rois, gt_boxes), c["roi_positive_iou"],
                                           c["roi_positive_iou"], gt_valid=gt_valid)
        labels = tf.where(roi_valid, labels, ops.IGNORE)
        positive, negative = ops.sample_balanced(labels, c["roi_batch_per_image"],
                                                 c["roi_positive_fraction"])
        priority = (tf.cast(positive, tf.float32) * 2.0 + tf.cast(negative, tf.float32)) * (
            1.0 + tf.random.uniform(tf.shape(labels)))
        index, chosen = _select(priority, c["roi_batch_per_image"])
        is_positive = tf.gather(positive, index, batch_dims=1) & chosen
        matched = tf.gather(matched, index, batch_dims=1)
        sample = {
            "rois": tf.stop_gradient(tf.gather(rois, index, batch_dims=1)),
            "chosen": chosen,
            "is_positive": is_positive,
            "matched": matched,
            "classes": tf.where(is_positive,
                                tf.gather(gt["classes"], matched, batch_dims=1) + 1, 0),
        }
        return losses, sample

    def box_losses(self, logits, deltas, sample, gt):
        """Softmax CE over the sampled RoIs and smooth-L1 on the positives' class deltas, both
        divided by the sampled RoIs (averaged over replicas)."""
        c = self.config
        logits = tf.cast(logits, tf.float32)
        chosen_f = tf.cast(sample["chosen"], tf.float32)
        num_rois = tf.maximum(replica_mean(tf.reduce_sum(chosen_f)), 1.0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=sample["classes"],
                                                            logits=logits)
        class_deltas = tf.gather(tf.cast(deltas, tf.float32), sample["classes"], batch_dims=2)
        box_targets = ops.encode_boxes(
            tf.gather(gt["boxes"], sample["matched"], batch_dims=1), sample["rois"],
            c["box_weights"])
        box_loss = smooth_l1_loss(class_deltas, box_targets, c["roi_smooth_l1_beta"])
        return {
            "rcnn_class_loss": tf.reduce_sum(ce * chosen_f) / num_rois,
            "rcnn_box_loss": tf.reduce_sum(
                box_loss * tf.cast(sample["is_positive"], tf.float32)[..., None]) / num_rois,
        }

    def get_config(self):
        return dict(self.config, name=self.name)
