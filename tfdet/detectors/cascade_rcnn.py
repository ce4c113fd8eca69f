"""Cascade R-CNN (Cai & Vasconcelos 2018) and Cascade Mask R-CNN: Faster R-CNN FPN whose RoI
heads are three stages at IoU 0.5 / 0.6 / 0.7 (tfdet.detectors.roi_heads.CascadeRoIHeads).

`model(images)` returns the detection dict of FasterRCNN (plus masks for Cascade Mask
R-CNN): the last stage's boxes with the mean of the stages' class scores.
`compute_losses(batch)` returns the RPN losses, each stage's weighted
rcnn_class_loss_stageN / rcnn_box_loss_stageN and, with masks, mask_loss. Defaults follow
the static zoo's cascade_rcnn_r50_fpn_1x (REFERENCE.md): coder weights [10, 10, 5, 5],
[20, 20, 10, 10], [30, 30, 15, 15], stage loss weights 1 / 0.5 / 0.25, class-agnostic
regression (a background and a foreground delta per stage, 8 outputs).
"""
import keras

from tfdet import ops
from tfdet.detectors.faster_rcnn import FasterRCNN
from tfdet.detectors.mask_rcnn import WithMasks
from tfdet.detectors.roi_heads import CascadeRoIHeads
from tfdet.registry import DETECTORS


@DETECTORS.register("cascade_rcnn")
@keras.saving.register_keras_serializable("tfdet")
class CascadeRCNN(FasterRCNN):
    """Cascade R-CNN; FasterRCNN's settings (FPN only) plus cascade_ious,
    cascade_box_weights, cascade_loss_weights and cascade_add_gt (one entry per stage: whether
    the stage's training RoIs include the ground truth boxes; the static zoo adds them to
    every stage, ppdet 2.x to the first only) and class_aware
    (class-specific regression in every stage, the top class's box passed on: the static
    zoo's CascadeRCNNClsAware). The stages' box heads are box_head, box_head_stage2,
    box_head_stage3, ... Its parts take a list per stage: box_heads, roi_matchers (one
    ops.ArgmaxMatcher per cascade_iou) and box_coders (one ops.BoxCoder per
    cascade_box_weights) instead of box_head, roi_matcher and box_coder."""

    part_names = tuple(n for n in FasterRCNN.part_names
                       if n not in ("box_head", "roi_matcher", "box_coder")) + (
        "box_heads", "roi_matchers", "box_coders")

    def __init__(self, num_classes=80, cascade_ious=(0.5, 0.6, 0.7),
                 cascade_box_weights=((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0),
                                      (30.0, 30.0, 15.0, 15.0)),
                 cascade_loss_weights=(1.0, 0.5, 0.25), cascade_add_gt=None, class_aware=False,
                 **kwargs):
        stages = len(cascade_ious)
        if cascade_add_gt is None:
            cascade_add_gt = (True,) * stages
        if not stages or len(cascade_box_weights) != stages or len(
                cascade_loss_weights) != stages or len(cascade_add_gt) != stages:
            raise ValueError(
                f"cascade_ious ({len(cascade_ious)}), cascade_box_weights "
                f"({len(cascade_box_weights)}), cascade_loss_weights "
                f"({len(cascade_loss_weights)}) and cascade_add_gt ({len(cascade_add_gt)}) "
                "need one entry per stage")
        self._cascade_settings = dict(
            cascade_ious=tuple(float(v) for v in cascade_ious),
            cascade_box_weights=tuple(tuple(float(v) for v in w) for w in cascade_box_weights),
            cascade_loss_weights=tuple(float(v) for v in cascade_loss_weights),
            cascade_add_gt=tuple(bool(v) for v in cascade_add_gt),
            class_aware=bool(class_aware))
        super().__init__(num_classes=num_classes, **kwargs)

    def build_roi_heads(self, given):
        c = self.config
        c.update(self._cascade_settings)
        if c["neck"] != "fpn":
            raise ValueError("CascadeRCNN: neck must be 'fpn' (the zoo has no C4 cascade)")
        names = ["box_head"] + [f"box_head_stage{i + 1}"
                                for i in range(1, len(c["cascade_ious"]))]
        heads = given.take("box_heads", lambda: [
            self.box_head_layer(name, class_agnostic=not c["class_aware"]) for name in names])
        matchers = given.take("roi_matchers", lambda: [
            ops.ArgmaxMatcher(iou) for iou in c["cascade_ious"]])
        coders = given.take("box_coders", lambda: [
            ops.BoxCoder(w) for w in c["cascade_box_weights"]])
        return CascadeRoIHeads(c, heads, matchers=matchers, coders=coders, name="roi_heads",
                               **self.roi_parts(given))


@DETECTORS.register("cascade_mask_rcnn")
@keras.saving.register_keras_serializable("tfdet")
class CascadeMaskRCNN(WithMasks, CascadeRCNN):
    """Cascade Mask R-CNN: CascadeRCNN plus the mask part (WithMasks) on the last stage's
    boxes."""

    part_names = CascadeRCNN.part_names + WithMasks.mask_part_names
