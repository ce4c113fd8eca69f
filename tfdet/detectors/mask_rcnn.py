"""Mask R-CNN (He et al. 2017): Faster R-CNN whose RoI heads add a mask head.

`model(images)` returns Faster R-CNN's detection dict plus masks [B, max_detections, m, m]:
each detection's mask probabilities in its box (m = 28 for FPN, 14 for C4), the OD API's
per-box layout; `ops.paste_masks` places them in the image. `compute_losses(batch)` adds
mask_loss; the batch needs `masks` [B, M, H, W] (the input pipeline with masks=True).
"""
import keras

from tfdet.detectors.faster_rcnn import FasterRCNN
from tfdet.heads import MaskHead
from tfdet.registry import DETECTORS


class WithMasks:
    """The mask part of a two-stage detector (Mask R-CNN, Cascade Mask R-CNN): adds a mask
    head to the RoI heads the detector builds.

    FPN: RoIAlign 14x14 (mask_roi_size, the box head's sampling and alignment) from P2-P5,
    mask_num_convs convs of mask_conv_dim + deconv -> 28x28. C4: the mask head reads the box
    head's res5 output of each RoI (7x7) through a deconv -> 14x14 (mask_num_convs=0, as the
    zoo's C4 rows). Training uses the sampled positive RoIs (at most roi_batch_per_image x
    roi_positive_fraction per image; a cascade's last stage's) and their ground-truth class's
    mask logits.
    """

    predicts_masks = True
    mask_part_names = ("mask_head", "mask_pooler")

    def __init__(self, num_classes=80, mask_roi_size=14, mask_num_convs=4, mask_conv_dim=256,
                 **kwargs):
        self._mask_settings = dict(mask_roi_size=mask_roi_size, mask_num_convs=mask_num_convs,
                                   mask_conv_dim=mask_conv_dim)
        super().__init__(num_classes=num_classes, **kwargs)

    def build_roi_heads(self, given):
        c = self.config
        c.update(self._mask_settings)
        roi_heads = super().build_roi_heads(given)
        box_head = roi_heads.box_head
        if box_head.feeds_mask_head:  # C4: the mask head reads the res5 maps of each RoI
            channels = box_head.feature_channels
        else:
            roi_heads.mask_pooler = given.take(
                "mask_pooler", lambda: self.roi_pooler(c["mask_roi_size"]))
            channels = self.head_channels

        def mask_head():
            head = MaskHead(self.num_classes, c["mask_num_convs"], c["mask_conv_dim"],
                            norm=c["head_norm"], name="mask_head")
            size = roi_heads.mask_size // 2  # the RoI side the mask head reads
            head.build((None, None, size, size, channels))
            return head
        roi_heads.mask_head = given.take("mask_head", mask_head)
        return roi_heads

    @property
    def mask_head(self):
        return self.roi_heads.mask_head

    @property
    def mask_size(self):
        return self.roi_heads.mask_size

    def mask_logits(self, pyramid, boxes, training=False):
        """Mask logits [B, N, m, m, K + 1] for boxes [B, N, 4] in input pixels."""
        return self.roi_heads.mask_logits(pyramid, boxes, training)


@DETECTORS.register("mask_rcnn")
@keras.saving.register_keras_serializable("tfdet")
class MaskRCNN(WithMasks, FasterRCNN):
    """Mask R-CNN: FasterRCNN's settings and parts plus the mask part (WithMasks)."""

    part_names = FasterRCNN.part_names + WithMasks.mask_part_names
