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
from tfdet.detectors.ground_truth import ground_truth
from tfdet.detectors.keras_training import KerasTrainingMixin
from tfdet.detectors.parts import GivenParts
from tfdet.detectors.roi_heads import RoIHeads
from tfdet.detectors.rpn import RegionProposalNetwork, SharedSettings
from tfdet.heads import RPNHead
from tfdet.registry import BACKBONES, DETECTORS, NECKS, POSTPROCESSORS, ROI_BOX_HEADS


@DETECTORS.register("faster_rcnn")
@keras.saving.register_keras_serializable("tfdet")
class FasterRCNN(KerasTrainingMixin, keras.Model):
    """Faster R-CNN; see the module docstring. num_classes excludes the background.

    The parts, each given in `parts` (built) or built from these settings by the registered
    builder they name (tfdet.registry):
      backbone        `backbone` ('resnet': depth, variant, groups, group_width, norm,
                      freeze_at, dcn_stages), up to the stage the neck reads
      neck            `neck`: 'fpn' (P2-P6, one anchor size per level; fpn_channels,
                      fpn_norm='gn' for the GN rows) or 'c4' (one level at stride 16 with
                      every anchor size)
      anchor_generator  anchor_sizes and ratios on the neck's strides
      rpn_matcher, rpn_sampler, rpn_coder   rpn_positive_iou / rpn_negative_iou (with each
                      box's best anchors), rpn_batch_per_image / rpn_positive_fraction, unit
                      weights
      pooler          RoIAlign of roi_size (sampling_ratio, aligned) from the neck's RoI maps,
                      computed as roi_align_method says ('auto': crop_and_resize for a fixed
                      sampling_ratio outside XLA, else gathered taps; ops.roi_align)
      box_head        `box_head` (default: the neck's, 'fc' for FPN, 'res5' for C4); 'fc' has
                      box_head_convs convs (head_norm) and box_head_fcs fcs of fc_dim (the GN
                      rows' '4conv1fc': 4 convs with GN, 1 fc)
      roi_matcher, roi_sampler, box_coder   roi_positive_iou, roi_batch_per_image /
                      roi_positive_fraction, box_weights
      postprocessor   `nms`: 'hard' (per-class NMS at nms_iou) or 'soft' (Paddle's Gaussian
                      soft-NMS with soft_nms_sigma); score_threshold and max_detections (as
                      Paddle's score_threshold and keep_top_k)
    Subclasses add mask_head / mask_pooler (Mask R-CNN) or per-stage lists (Cascade R-CNN).
    The units: `rpn` (RegionProposalNetwork) and `roi_heads` (RoIHeads). A model given built
    parts keeps its settings as its config; rebuilding it from that config builds the
    registered parts instead.
    """

    # Settings for the forward pass that creates the weights (tfdet.models.get): a few
    # proposals through the heads; the zoo's 1000 through a C4 row's res5 took 10 GB and 14 s.
    build_settings = {"test_pre_nms_top_k": 32, "test_post_nms_top_k": 8}
    part_names = ("backbone", "neck", "anchor_generator", "rpn_matcher", "rpn_sampler",
                  "rpn_coder", "pooler", "box_head", "roi_matcher", "roi_sampler", "box_coder",
                  "postprocessor")

    def __init__(self, num_classes=80, depth=50, variant="b", groups=1, group_width=64,
                 norm="affine", freeze_at=2, neck="fpn", fpn_channels=256,
                 anchor_sizes=(32, 64, 128, 256, 512),
                 ratios=(0.5, 1.0, 2.0), rpn_positive_iou=0.7, rpn_negative_iou=0.3,
                 rpn_batch_per_image=256, rpn_positive_fraction=0.5,
                 train_pre_nms_top_k=2000, train_post_nms_top_k=2000,
                 test_pre_nms_top_k=1000, test_post_nms_top_k=1000, rpn_nms_iou=0.7,
                 rpn_smooth_l1_beta=1 / 9, roi_batch_per_image=512, roi_positive_fraction=0.25,
                 roi_positive_iou=0.5, roi_size=7, sampling_ratio=2, aligned=False,
                 roi_align_method="auto", fc_dim=1024, box_weights=(10.0, 10.0, 5.0, 5.0), roi_smooth_l1_beta=1.0,
                 score_threshold=0.05, nms_iou=0.5, max_detections=100, rpn_min_size=0.0,
                 dcn_stages=(), nms="hard", soft_nms_sigma=0.5, fpn_norm=None,
                 box_head_convs=0, box_head_fcs=2, head_norm=None, backbone="resnet",
                 box_head=None, parts=None, **kwargs):
        super().__init__(**kwargs)
        config = {k: v for k, v in locals().items()
                  if k not in ("self", "kwargs", "__class__", "parts")}
        config.update(anchor_sizes=tuple(anchor_sizes), ratios=tuple(ratios),
                      box_weights=tuple(box_weights),
                      dcn_stages=tuple(int(v) for v in dcn_stages))
        self.config = config = SharedSettings(config)  # shared with the RPN and RoI heads
        self.num_classes = num_classes
        given = GivenParts(type(self).__name__, self.part_names, parts)
        self.neck = neck = given.take("neck", lambda: NECKS.get(config["neck"])(config))
        body = given.take("backbone",
                          lambda: BACKBONES.get(config["backbone"])(config, neck.last_stage))
        features = neck(body.outputs)
        self.head_channels = features[0].shape[-1]
        anchor_generator = given.take("anchor_generator", lambda: ops.rcnn_anchor_generator(
            neck.strides, anchor_sizes, ratios))
        self.rpn = RegionProposalNetwork(
            config, anchor_generator,
            RPNHead(anchor_generator.num_anchors_per_location, self.head_channels,
                    name="rpn_head"),
            matcher=given.take("rpn_matcher", lambda: ops.ArgmaxMatcher(
                rpn_positive_iou, rpn_negative_iou, allow_low_quality=True)),
            sampler=given.take("rpn_sampler", lambda: ops.BalancedSampler(
                rpn_batch_per_image, rpn_positive_fraction)),
            coder=given.take("rpn_coder", ops.BoxCoder), name="rpn")
        rpn_logits, rpn_deltas = self.rpn.head(features)
        self.network = keras.Model(body.input, [*features, rpn_logits, rpn_deltas],
                                   name="faster_rcnn_network")
        self.roi_heads = self.build_roi_heads(given)

    def box_head_layer(self, name="box_head", class_agnostic=False):
        """A built RoI box head of the registered kind `box_head` names (else the neck's)."""
        c = self.config
        kind = c["box_head"] or self.neck.box_head
        return ROI_BOX_HEADS.get(kind)(c, self.num_classes, self.head_channels, name,
                                       class_agnostic)

    def roi_pooler(self, output_size):
        """RoIAlign of output_size from the neck's RoI maps (sampling_ratio, aligned)."""
        c = self.config
        return ops.RoIPooler(output_size, self.neck.roi_strides, c["sampling_ratio"],
                             c["aligned"], c["roi_align_method"])

    def roi_parts(self, given):
        """The parts every RoI-heads unit takes: pooler, sampler, postprocessor."""
        c = self.config
        return dict(
            pooler=given.take("pooler", lambda: self.roi_pooler(c["roi_size"])),
            sampler=given.take("roi_sampler", lambda: ops.BalancedSampler(
                c["roi_batch_per_image"], c["roi_positive_fraction"])),
            postprocessor=given.take("postprocessor",
                                     lambda: POSTPROCESSORS.get(c["nms"])(c)))

    def build_roi_heads(self, given):
        """The second stage (MaskRCNN adds its mask head, CascadeRCNN has several stages)."""
        c = self.config
        return RoIHeads(c, given.take("box_head", self.box_head_layer),
                        matcher=given.take("roi_matcher",
                                           lambda: ops.ArgmaxMatcher(c["roi_positive_iou"])),
                        coder=given.take("box_coder", lambda: ops.BoxCoder(c["box_weights"])),
                        name="roi_heads", **self.roi_parts(given))

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
        # Proposals (and a cascade's refined boxes) are clipped to each image before padding
        # (the pipeline's image_size [B, 2]), as Paddle clips to im_shape; else to the input.
        image_sizes = batch.get("image_size")
        if image_sizes is not None:
            image_sizes = tf.cast(image_sizes, tf.float32)
        *pyramid, rpn_logits, rpn_deltas = self.network(images, training=training)
        losses, proposals, valid = self.rpn.losses_and_proposals(images, gt, rpn_logits,
                                                                 rpn_deltas, image_sizes)
        losses.update(self.roi_heads.losses(images, pyramid, proposals, valid, gt,
                                            batch.get("masks"), training=training,
                                            image_sizes=image_sizes))
        losses["total_loss"] = tf.add_n(list(losses.values()))
        return losses

    def get_config(self):
        return dict(self.config, name=self.name)
