"""RetinaNet (Lin et al. 2017): ResNet + FPN P3-P7 + shared heads + focal loss.

`model(images)` takes normalised images [B, H, W, 3] (H, W multiples of 128 for P7) and returns
the detection dict: boxes [B, max_detections, 4] xyxy in input pixels (clipped to the input),
scores, classes int32 (contiguous), num_detections int32. Divide boxes by the pipeline's
`scale` to get original-image pixels.
"""
import keras
import tensorflow as tf

from tfdet import ops
from tfdet.detectors.ground_truth import ground_truth
from tfdet.detectors.dense import DenseDetector
from tfdet.detectors.parts import GivenParts
from tfdet.losses import positive_count, sigmoid_focal_loss, smooth_l1_loss
from tfdet.heads import RetinaNetHead
from tfdet.registry import BACKBONES, DETECTORS, NECKS, POSTPROCESSORS


@DETECTORS.register("retinanet")
@keras.saving.register_keras_serializable("tfdet")
class RetinaNet(DenseDetector):
    """RetinaNet detector; see the module docstring for inputs and outputs.

    The parts, each given in `parts` (built) or built from these settings: backbone
    (`backbone`, registered: 'resnet' with depth, variant, groups, group_width, norm,
    freeze_at, dcn_stages), neck (`neck`, registered: 'fpn' P{min_level}-P{max_level} with
    fpn_channels and fpn_extra), head (RetinaNetHead with head_norm), anchor_generator
    (anchor_size x stride, num_scales octave scales, ratios), matcher (positive_iou /
    negative_iou with each box's best anchors), coder (box_weights) and postprocessor
    (`nms`, registered: per-class NMS of pre_nms_top_k per class at nms_iou).
    """

    part_names = ("backbone", "neck", "head", "anchor_generator", "matcher", "coder",
                  "postprocessor")

    def __init__(self, num_classes=80, depth=50, variant="b", groups=1, group_width=64,
                 norm="affine", freeze_at=2, min_level=3, max_level=7, fpn_channels=256,
                 fpn_extra="conv_c5", head_norm=None, anchor_size=4, num_scales=3,
                 ratios=(0.5, 1.0, 2.0), box_weights=(1.0, 1.0, 1.0, 1.0),
                 score_threshold=0.05, pre_nms_top_k=1000, nms_iou=0.5, max_detections=100,
                 positive_iou=0.5, negative_iou=0.4, focal_alpha=0.25, focal_gamma=2.0,
                 smooth_l1_beta=0.11, pre_nms="pair", clip_boxes=True, dcn_stages=(),
                 backbone="resnet", neck="fpn", nms="hard", parts=None, **kwargs):
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
            dcn_stages=tuple(int(v) for v in dcn_stages), backbone=backbone, neck=neck,
            nms=nms)
        if pre_nms not in ("pair", "anchor"):
            raise ValueError(f"RetinaNet: pre_nms must be 'pair' or 'anchor', got {pre_nms!r}")
        if pre_nms == "pair" and nms != "hard":
            raise ValueError(f"RetinaNet: nms={nms!r} needs pre_nms='anchor' (the 'pair' "
                             "candidates go through per-class hard NMS)")
        self.num_classes = num_classes
        c = self.config
        given = GivenParts("RetinaNet", self.part_names, parts)
        self.anchor_generator = given.take("anchor_generator", lambda: (
            ops.retinanet_anchor_generator(min_level, max_level, anchor_size, num_scales,
                                           ratios)))
        neck_part = given.take("neck", lambda: NECKS.get(neck)(c))
        body = given.take("backbone", lambda: BACKBONES.get(backbone)(c, neck_part.last_stage))
        pyramid = neck_part(body.outputs)
        self.head = given.take("head", lambda: RetinaNetHead(
            num_classes, self.anchor_generator.num_anchors_per_location,
            pyramid[0].shape[-1], norm=head_norm, name="head"))
        self.matcher = given.take("matcher", lambda: ops.ArgmaxMatcher(
            positive_iou, negative_iou, allow_low_quality=True))
        self.coder = given.take("coder", lambda: ops.BoxCoder(box_weights))
        self.postprocessor = given.take("postprocessor", lambda: POSTPROCESSORS.get(nms)(c))
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
        matched, labels = self.matcher(anchors[None], boxes, valid)
        positive = tf.cast(labels == 1, tf.float32)
        matched_classes = tf.gather(classes, matched, batch_dims=1)
        class_targets = tf.one_hot(matched_classes, self.num_classes) * positive[..., None]
        matched_boxes = tf.gather(boxes, matched, batch_dims=1)
        box_targets = self.coder.encode(matched_boxes, anchors[None])
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
        by_anchor = c["pre_nms"] == "anchor"
        boxes, scores, classes = self.top_k_per_level(logits, deltas, anchors, counts,
                                                      by_anchor)
        if c["clip_boxes"]:
            boxes = ops.clip_boxes(boxes, height, width)
        if by_anchor:
            return self.multiclass_nms(boxes, scores)
        return ops.batched_labeled_nms(
            boxes, scores, classes, iou_threshold=c["nms_iou"],
            score_threshold=c["score_threshold"], max_total=c["max_detections"])
