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
from tfdet.detectors.roi_heads import RoIHeads
from tfdet.detectors.rpn import RegionProposalNetwork, SharedSettings
from tfdet.heads import FCBoxHead, Res5BoxHead
from tfdet.necks import fpn
from tfdet.registry import DETECTORS


@DETECTORS.register("faster_rcnn")
@keras.saving.register_keras_serializable("tfdet")
class FasterRCNN(KerasTrainingMixin, keras.Model):
    """Faster R-CNN; see the module docstring. num_classes excludes the background.

    neck 'fpn' (P2-P6, one anchor size per level) or 'c4' (one level at stride 16 with every
    anchor size, res5 on 14x14 RoIs as the box head; its zoo settings come from the registry).
    The GroupNorm rows: fpn_norm='gn' (GN after every FPN conv), head_norm='gn' with
    box_head_convs=4, box_head_fcs=1 (the '4conv1fc' box head) and GN in the mask head's convs.
    nms 'hard' (per-class NMS at nms_iou) or 'soft' (Paddle's Gaussian soft-NMS with
    soft_nms_sigma, per class; score_threshold and max_detections as Paddle's score_threshold
    and keep_top_k). The units: `rpn` (RegionProposalNetwork) and `roi_heads` (RoIHeads).
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
                 dcn_stages=(), nms="hard", soft_nms_sigma=0.5, fpn_norm=None,
                 box_head_convs=0, box_head_fcs=2, head_norm=None, **kwargs):
        super().__init__(**kwargs)
        config = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        config.update(anchor_sizes=tuple(anchor_sizes), ratios=tuple(ratios),
                      box_weights=tuple(box_weights),
                      dcn_stages=tuple(int(v) for v in dcn_stages))
        self.config = config = SharedSettings(config)  # shared with the RPN and RoI heads
        self.num_classes = num_classes
        if neck not in ("fpn", "c4"):
            raise ValueError(f"neck must be 'fpn' or 'c4', got {neck!r}")
        if nms not in ("hard", "soft"):
            raise ValueError(f"nms must be 'hard' or 'soft', got {nms!r}")
        if neck == "fpn":
            anchor_generator = ops.AnchorGenerator(
                strides=(4, 8, 16, 32, 64), sizes=tuple(anchor_sizes), scales=(1.0,),
                ratios=tuple(ratios))
            body = resnet(depth, variant, groups, group_width, norm, freeze_at,
                          dcn_stages=dcn_stages)
            features = fpn(body.outputs, 2, 6, fpn_channels, extra="pool", norm=fpn_norm)
            head_channels = fpn_channels
        else:
            base = anchor_sizes[0]
            anchor_generator = ops.AnchorGenerator(
                strides=(16,), sizes=(base,), scales=tuple(s / base for s in anchor_sizes),
                ratios=tuple(ratios))
            if dcn_stages:
                raise ValueError("dcn_stages: deformable convs are built for FPN rows only "
                                 "(the zoo has no C4 DCN row)")
            body = resnet(depth, variant, groups, group_width, norm, freeze_at, num_stages=3)
            features = body.outputs[-1:]
            head_channels = features[0].shape[-1]
        self.rpn = RegionProposalNetwork(config, anchor_generator, head_channels, name="rpn")
        rpn_logits, rpn_deltas = self.rpn.head(features)
        self.network = keras.Model(body.input, [*features, rpn_logits, rpn_deltas],
                                   name="faster_rcnn_network")
        self.head_channels = head_channels
        self.roi_heads = self.build_roi_heads()

    def box_head_layer(self, name="box_head", class_agnostic=False):
        """A built RoI box head: the 2fc head (FPN) or res5 (C4)."""
        c = self.config
        if c["neck"] == "fpn":
            head = FCBoxHead(self.num_classes, c["fc_dim"], c["box_head_fcs"],
                             class_agnostic=class_agnostic, num_convs=c["box_head_convs"],
                             conv_dim=self.head_channels, norm=c["head_norm"], name=name)
        else:
            res5 = resnet_stage(5, self.head_channels, c["depth"], c["variant"], c["groups"],
                                c["group_width"], c["norm"])
            head = Res5BoxHead(res5, self.num_classes, name=name)
        head.build((None, None, c["roi_size"], c["roi_size"], self.head_channels))
        return head

    def build_roi_heads(self):
        """The second stage (MaskRCNN adds its mask head, CascadeRCNN has several stages)."""
        return RoIHeads(self.config, self.box_head_layer(), name="roi_heads")

    # Parts reached by tests, scripts and the weight conversion.
    @property
    def anchor_generator(self):
        return self.rpn.anchor_generator

    @property
    def box_head(self):
        return self.roi_heads.box_head

    def proposals(self, images, rpn_logits, rpn_deltas, training, anchors=None,
                  image_sizes=None):
        """The RPN's proposals (boxes [B, P, 4], valid [B, P]); see RegionProposalNetwork."""
        return self.rpn.proposals(images, rpn_logits, rpn_deltas, training, anchors,
                                  image_sizes)

    def roi_features(self, features, rois):
        """The box head's pooled RoI features [B, R, s, s, C]; see RoIHeads.pool."""
        return self.roi_heads.pool(features, rois)

    # -- inference ---------------------------------------------------------------------------
    def call(self, images, training=False, image_sizes=None):
        """image_sizes: optional [B, 2] (h, w) of each image before padding; proposals and
        detections are clipped to it (as Paddle clips to im_shape), else to the input."""
        *pyramid, rpn_logits, rpn_deltas = self.network(images, training=training)
        rois, valid = self.rpn.proposals(images, rpn_logits, rpn_deltas, training=False,
                                         image_sizes=image_sizes)
        return self.roi_heads.predict(pyramid, rois, valid, images, image_sizes,
                                      training=training)

    # -- training ----------------------------------------------------------------------------
    def compute_losses(self, batch, training=True):
        """RPN objectness (BCE) and box (smooth-L1) losses over 256 sampled anchors per image;
        the RoI heads' losses: classification (softmax CE) and class-specific box losses over
        512 sampled RoIs per image (ground truth added to the proposals), plus mask_loss on
        a Mask R-CNN (the batch's `masks` [B, M, H, W]). Crowd boxes and padding never match.
        """
        gt = ground_truth(batch)
        images = batch["images"]
        *pyramid, rpn_logits, rpn_deltas = self.network(images, training=training)
        losses, proposals, valid = self.rpn.losses_and_proposals(images, gt, rpn_logits,
                                                                 rpn_deltas)
        losses.update(self.roi_heads.losses(images, pyramid, proposals, valid, gt,
                                            batch.get("masks"), training=training))
        losses["total_loss"] = tf.add_n(list(losses.values()))
        return losses

    def get_config(self):
        return dict(self.config, name=self.name)
