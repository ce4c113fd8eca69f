"""RetinaNet (Lin et al. 2017): ResNet + FPN P3-P7 + shared heads + focal loss.

`model(images)` takes normalised images [B, H, W, 3] (H, W multiples of 128 for P7) and returns
the detection dict: boxes [B, max_detections, 4] xyxy in input pixels (clipped to the input),
scores, classes int32 (contiguous), num_detections int32. Divide boxes by the pipeline's
`scale` to get original-image pixels.
"""
import keras
import tensorflow as tf

from tfdet import ops
from tfdet.backbones import resnet
from tfdet.detectors.ground_truth import ground_truth
from tfdet.detectors.dense import DenseDetector
from tfdet.losses import positive_count, sigmoid_focal_loss, smooth_l1_loss
from tfdet.heads import RetinaNetHead
from tfdet.necks import fpn
from tfdet.registry import DETECTORS


@DETECTORS.register("retinanet")
@keras.saving.register_keras_serializable("tfdet")
class RetinaNet(DenseDetector):
    """RetinaNet detector; see the module docstring for inputs and outputs."""

    def __init__(self, num_classes=80, depth=50, variant="b", groups=1, group_width=64,
                 norm="affine", freeze_at=2, min_level=3, max_level=7, fpn_channels=256,
                 fpn_extra="conv_c5", head_norm=None, anchor_size=4, num_scales=3,
                 ratios=(0.5, 1.0, 2.0), box_weights=(1.0, 1.0, 1.0, 1.0),
                 score_threshold=0.05, pre_nms_top_k=1000, nms_iou=0.5, max_detections=100,
                 positive_iou=0.5, negative_iou=0.4, focal_alpha=0.25, focal_gamma=2.0,
                 smooth_l1_beta=0.11, pre_nms="pair", clip_boxes=True, dcn_stages=(),
                 **kwargs):
        super().__init__(**kwargs)
        self.config = dict(
            num_classes=num_classes, depth=depth, variant=variant, groups=groups,
            group_width=group_width, norm=norm, freeze_at=freeze_at, min_level=min_level,
            max_level=max_level, fpn_channels=fpn_channels, fpn_extra=fpn_extra,
            head_norm=head_norm, anchor_size=anchor_size, num_scales=num_scales,
            ratios=tuple(ratios), box_weights=tuple(box_weights),
            score_threshold=score_threshold, pre_nms_top_k=pre_nms_top_k, nms_iou=nms_iou,
            max_detections=max_detections, positive_iou=positive_iou,
            negative_iou=negative_iou, focal_alpha=focal_alpha, focal_gamma=focal_gamma,
            smooth_l1_beta=smooth_l1_beta, pre_nms=pre_nms, clip_boxes=clip_boxes,
            dcn_stages=tuple(int(v) for v in dcn_stages))
        if pre_nms not in ("pair", "anchor"):
            raise ValueError(f"RetinaNet: pre_nms must be 'pair' or 'anchor', got {pre_nms!r}")
        self.num_classes = num_classes
        self.anchor_generator = ops.retinanet_anchor_generator(
            min_level, max_level, anchor_size, num_scales, ratios)
        body = resnet(depth, variant, groups, group_width, norm, freeze_at,
                      dcn_stages=dcn_stages)
        pyramid = fpn(body.outputs, min_level, max_level, fpn_channels, fpn_extra)
        self.head = RetinaNetHead(num_classes, self.anchor_generator.num_anchors_per_location,
                                  fpn_channels, norm=head_norm, name="head")
        logits, deltas = self.head(pyramid)
        self.network = keras.Model(body.input, [logits, deltas], name="retinanet_network")

    def anchors(self, height, width):
        """Anchors [N, 4] for an input of the given (padded) size, and per-level counts."""
        return self.anchor_generator(height, width)

    def assign_targets(self, anchors, boxes, classes, valid):
        """Matches anchors [N, 4] to padded ground truth boxes [B, M, 4] / classes [B, M].

        Returns (labels [B, N]: 1 / 0 / -1, class targets [B, N, K] one-hot on positives,
        box targets [B, N, 4] encoded deltas). IoU >= positive_iou is positive (plus each
        box's best anchors), < negative_iou negative, in between ignored.
        """
        c = self.config
        iou = ops.box_iou(anchors[None], boxes)
        matched, labels = ops.argmax_match(iou, c["positive_iou"], c["negative_iou"],
                                           allow_low_quality=True, gt_valid=valid)
        positive = tf.cast(labels == 1, tf.float32)
        matched_classes = tf.gather(classes, matched, batch_dims=1)
        class_targets = tf.one_hot(matched_classes, self.num_classes) * positive[..., None]
        matched_boxes = tf.gather(boxes, matched, batch_dims=1)
        box_targets = ops.encode_boxes(matched_boxes, anchors[None], c["box_weights"])
        return labels, class_targets, box_targets

    def compute_losses(self, batch, training=True):
        """Focal + smooth-L1 losses of a pipeline batch, both divided by the positive count
        (its mean over replicas under tf.distribute, so replicas agree with one device).

        Crowd boxes and padding never match. Returns {'class_loss', 'box_loss', 'total_loss'}.
        """
        c = self.config
        images = batch["images"]
        logits, deltas = self.raw_outputs(images, training=training)
        anchors, _ = self.anchors(tf.shape(images)[1], tf.shape(images)[2])
        gt = ground_truth(batch)
        labels, class_targets, box_targets = self.assign_targets(
            anchors, gt["boxes"], gt["classes"], gt["valid"])
        positive = tf.cast(labels == 1, tf.float32)
        counted = tf.cast(labels >= 0, tf.float32)
        num_positive = positive_count(positive)
        focal = sigmoid_focal_loss(tf.cast(logits, tf.float32), class_targets,
                                   c["focal_alpha"], c["focal_gamma"])
        class_loss = tf.reduce_sum(focal * counted[..., None]) / num_positive
        l1 = smooth_l1_loss(tf.cast(deltas, tf.float32), box_targets, c["smooth_l1_beta"])
        box_loss = tf.reduce_sum(l1 * positive[..., None]) / num_positive
        return {"class_loss": class_loss, "box_loss": box_loss,
                "total_loss": class_loss + box_loss}

    def postprocess(self, images, logits, deltas):
        """Per level the top pre_nms_top_k candidates, decoded, then per-class NMS.

        pre_nms='pair' (the static zoo's retinanet_detection_output): candidates are
        (anchor, class) pairs ranked by score. pre_nms='anchor' (ppdet 2.x): anchors ranked by
        their best class score keep all their class scores, and each class's pre_nms_top_k best
        enter its NMS. clip_boxes: clip to the input (ppdet 2.x does not).
        """
        c = self.config
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        anchors, counts = self.anchors(height, width)
        k = self.num_classes
        scores = tf.sigmoid(tf.cast(logits, tf.float32))
        deltas = tf.cast(deltas, tf.float32)
        batch = tf.shape(images)[0]
        by_anchor = c["pre_nms"] == "anchor"
        boxes_all, scores_all, classes_all = [], [], []
        start = 0
        for count in counts:
            level_scores = scores[:, start:start + count]
            level_deltas = deltas[:, start:start + count]
            level_anchors = anchors[start:start + count]
            if by_anchor:
                ranked = tf.reduce_max(level_scores, axis=-1)
            else:
                ranked = tf.reshape(level_scores, [batch, -1])
            top_k = tf.minimum(c["pre_nms_top_k"], tf.shape(ranked)[1])
            top_scores, top_index = tf.math.top_k(ranked, top_k)
            anchor_index = top_index if by_anchor else top_index // k
            boxes = ops.decode_boxes(tf.gather(level_deltas, anchor_index, batch_dims=1),
                                     tf.gather(level_anchors, anchor_index),
                                     c["box_weights"])
            boxes_all.append(boxes)
            if by_anchor:
                scores_all.append(tf.gather(level_scores, anchor_index, batch_dims=1))
            else:
                scores_all.append(top_scores)
                classes_all.append(top_index % k)
            start += count
        boxes = tf.concat(boxes_all, 1)
        if c["clip_boxes"]:
            boxes = ops.clip_boxes(boxes, height, width)
        if by_anchor:
            return self.multiclass_nms(boxes, tf.concat(scores_all, 1))
        return ops.batched_labeled_nms(
            boxes, tf.concat(scores_all, 1), tf.concat(classes_all, 1),
            iou_threshold=c["nms_iou"], score_threshold=c["score_threshold"],
            max_total=c["max_detections"])
