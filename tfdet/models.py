"""The zoo registry: every zoo row by name, built as a Keras model.

    tfdet.models.list_models() -> ["retinanet_r101_fpn_1x", ...]
    tfdet.models.get("retinanet_r50_fpn", num_classes=None, weights=None, **overrides)
    tfdet.models.load("runs/X")    # a run folder (train.py, convert_weights.py) -> its model

A name without its schedule suffix (retinanet_r50_fpn) is the same architecture as its 1x row.
`overrides` replace architecture settings (e.g. depth=18, norm="bn" for training from scratch).
`weights` is a local Keras weights file; nothing downloads.
"""
import numpy as np

from tfdet.detectors import (SSD, CascadeMaskRCNN, CascadeRCNN, FasterRCNN, MaskRCNN,
                             RetinaNet, YOLOv3)

_X101_64X4D = dict(depth=101, variant="d", groups=64, group_width=4)
_R50_VD = dict(depth=50, variant="d")
_R101_VD = dict(depth=101, variant="d")
_DCN = dict(dcn_stages=(3, 4, 5))
# GroupNorm rows (ppdet 2.x gn/*.yml): GN in the FPN and the heads, the 4conv1fc box head.
_GN = dict(depth=50, fpn_norm="gn", head_norm="gn", box_head_convs=4, box_head_fcs=1)
_CLS_AWARE = dict(_R101_VD, class_aware=True, roi_size=14, nms="soft", score_threshold=0.01,
                  max_detections=300)
# C4 Faster R-CNN (PaddleDetection faster_rcnn_r50_1x.yml): RPN on C4 with 12000 / 2000
# proposals in training and 6000 / 1000 at test, 14x14 RoIAlign (adaptive sampling) on C4.
_C4 = dict(neck="c4", train_pre_nms_top_k=12000, train_post_nms_top_k=2000,
           test_pre_nms_top_k=6000, test_post_nms_top_k=1000, roi_size=14, sampling_ratio=0)
# C4 Mask R-CNN (mask_rcnn_r50_1x.yml): the mask head is a deconv on the res5 RoI maps.
_C4_MASK = dict(_C4, mask_num_convs=0)

# SSD (PaddleDetection ssd_vgg16_300 / _512 / ssd_mobilenet_v1_voc). The VOC VGG configs lay
# out each cell's priors in Caffe's order (min_max_aspect_ratios_order), the COCO ones not.
_SSD512 = dict(image_size=512, base_size=512,
               extras=((256, 512, 1, 2, 3), (128, 256, 1, 2, 3), (128, 256, 1, 2, 3),
                       (128, 256, 1, 2, 3), (128, 256, 1, 1, 4)),
               min_sizes=(20, 51, 133, 215, 296, 378, 460),
               max_sizes=(51, 133, 215, 296, 378, 460, 542),
               aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
               steps=(8, 16, 32, 64, 128, 256, 512))
_VOC = dict(num_classes=20)
_SSD_MOBILENET = dict(backbone="mobilenet_v1", extras=((256, 512), (128, 256), (128, 256),
                                                       (64, 128)),
                      min_sizes=(60, 105, 150, 195, 240, 285),
                      max_sizes=((), 150, 195, 240, 285, 300),
                      aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2, 3)), steps=None,
                      head_kernel=1, norm="bn")

# BlazeFace (PaddleDetection 2.6.0 blazeface_1000e.yml): BlazeNet's stride-8 and stride-16
# maps, 3x3 heads over 2 + 6 square priors per cell (min sizes 16, 24 and 32 ... 128 px at
# 640), SSD matching at IoU 0.35, NMS at 0.3 keeping 750. One class (face). Priors stay in
# input pixels at any image_size (base_size None), as ppdet's at any input size.
_BLAZEFACE = dict(num_classes=1, backbone="blazenet", image_size=640, base_size=None, extras=(),
                  min_sizes=((16, 24), (32, 48, 64, 80, 96, 128)), max_sizes=((), ()),
                  aspect_ratios=((1.0,), (1.0,)), steps=(8, 16), flip=False, head_kernel=3,
                  positive_iou=0.35, score_threshold=0.01, nms_iou=0.3, pre_nms_top_k=5000,
                  max_detections=750, norm="bn")

# BlazeFace-FPN-SSH (ppdet 2.6.0 blazeface_fpn_ssh_1000e.yml): hard-swish in the double blocks'
# first 1x1 convs, the FPN + SSH neck (48-channel maps into the head).
_BLAZEFACE_FPN_SSH = dict(_BLAZEFACE, backbone_settings=(("act", "hard_swish"),), neck="fpn_ssh")

# The static zoo's editions (static/configs/face_detection): its BlazeNet has a dense 5x5 conv
# where ppdet 2.x has the double blocks' second depthwise one; NAS and NAS_V2 are block lists
# found by search, Lite a different block (blazenet_lite). Same head, priors and matching.
_STATIC_BLAZE = (("dense_second_dw", True),)
_NAS_BLAZE = (("blaze_filters", ((12, 12), (12, 12, 2), (12, 12))),)
_BLAZEFACE_NAS = dict(_BLAZEFACE, backbone_settings=_STATIC_BLAZE + _NAS_BLAZE + (
    ("double_blaze_filters", ((12, 16, 24, 2), (24, 12, 24), (24, 16, 72, 2), (72, 12, 72))),))
_BLAZEFACE_NAS_V2 = dict(_BLAZEFACE, backbone_settings=_STATIC_BLAZE + _NAS_BLAZE + (
    ("double_blaze_filters", ((12, 16, 32, 2), (32, 32, 32), (32, 16, 72, 2), (72, 24, 72))),))
_BLAZEFACE_LITE = dict(_BLAZEFACE, backbone_settings=(("lite", True),))

# FaceBoxes (static zoo, face_detection/faceboxes.yml, faceboxes_lite.yml): FaceBoxNet, 3x3 heads
# over densified square anchors (Paddle's density_prior_box: 4 x 4 + 2 x 2 + 1 of 32, 64 and
# 128 px on the stride-8 map, 256 and 512 on the next; Lite: 2 x 2 + 1 + 1 of 16, 32, 64, then
# 96 and 128), BlazeFace's matching and post-processing.
_FACEBOXES = dict(_BLAZEFACE, backbone="faceboxnet", min_sizes=((32, 64, 128), (256,), (512,)),
                  densities=((4, 2, 1), (1,), (1,)), max_sizes=((), (), ()),
                  aspect_ratios=((1.0,),) * 3, steps=(8, 16, 32))
_FACEBOXES_LITE = dict(_FACEBOXES, backbone_settings=(("lite", True),),
                       min_sizes=((16, 32, 64), (96, 128)), densities=((2, 1, 1), (1, 1)),
                       max_sizes=((), ()), aspect_ratios=((1.0,),) * 2, steps=(8, 16))

# name -> (detector class, architecture settings, schedule)
_ZOO = {
    "retinanet_r50_fpn_1x": (RetinaNet, dict(depth=50), "1x"),
    "retinanet_r50_fpn_2x": (RetinaNet, dict(depth=50), "2x"),
    "retinanet_r101_fpn_1x": (RetinaNet, dict(depth=101), "1x"),
    "retinanet_x101_vd_64x4d_fpn_1x": (RetinaNet, _X101_64X4D, "1x"),
    "faster_rcnn_r50_1x": (FasterRCNN, dict(depth=50, **_C4), "1x"),
    "faster_rcnn_r50_2x": (FasterRCNN, dict(depth=50, **_C4), "2x"),
    "faster_rcnn_r50_vd_1x": (FasterRCNN, dict(_R50_VD, **_C4), "1x"),
    "faster_rcnn_r101_1x": (FasterRCNN, dict(depth=101, **_C4), "1x"),
    "faster_rcnn_r50_fpn_1x": (FasterRCNN, dict(depth=50), "1x"),
    "faster_rcnn_r50_fpn_2x": (FasterRCNN, dict(depth=50), "2x"),
    "faster_rcnn_r50_vd_fpn_2x": (FasterRCNN, _R50_VD, "2x"),
    "faster_rcnn_r101_fpn_1x": (FasterRCNN, dict(depth=101), "1x"),
    "faster_rcnn_r101_fpn_2x": (FasterRCNN, dict(depth=101), "2x"),
    "faster_rcnn_r101_vd_fpn_1x": (FasterRCNN, _R101_VD, "1x"),
    "faster_rcnn_r101_vd_fpn_2x": (FasterRCNN, _R101_VD, "2x"),
    "faster_rcnn_x101_vd_64x4d_fpn_1x": (FasterRCNN, _X101_64X4D, "1x"),
    "faster_rcnn_x101_vd_64x4d_fpn_2x": (FasterRCNN, _X101_64X4D, "2x"),
    # DCNv2 in the 3x3 convs of res3-res5 (the zoo's dcn rows, REFERENCE.md).
    "faster_rcnn_dcn_r50_fpn_1x": (FasterRCNN, dict(depth=50, **_DCN), "1x"),
    "faster_rcnn_dcn_r50_vd_fpn_2x": (FasterRCNN, dict(_R50_VD, **_DCN), "2x"),
    "faster_rcnn_dcn_r101_vd_fpn_1x": (FasterRCNN, dict(_R101_VD, **_DCN), "1x"),
    "faster_rcnn_dcn_x101_vd_64x4d_fpn_1x": (FasterRCNN, dict(_X101_64X4D, **_DCN), "1x"),
    "mask_rcnn_dcn_r50_fpn_1x": (MaskRCNN, dict(depth=50, **_DCN), "1x"),
    "mask_rcnn_dcn_r50_vd_fpn_2x": (MaskRCNN, dict(_R50_VD, **_DCN), "2x"),
    "mask_rcnn_dcn_r101_vd_fpn_1x": (MaskRCNN, dict(_R101_VD, **_DCN), "1x"),
    "mask_rcnn_dcn_x101_vd_64x4d_fpn_1x": (MaskRCNN, dict(_X101_64X4D, **_DCN), "1x"),
    "faster_rcnn_r50_fpn_gn_2x": (FasterRCNN, _GN, "2x"),
    "mask_rcnn_r50_fpn_gn_2x": (MaskRCNN, _GN, "2x"),
    "cascade_rcnn_r50_fpn_gn_2x": (CascadeRCNN, _GN, "2x"),
    "cascade_mask_rcnn_r50_fpn_gn_2x": (CascadeMaskRCNN, _GN, "2x"),
    "mask_rcnn_r50_1x": (MaskRCNN, dict(depth=50, **_C4_MASK), "1x"),
    "mask_rcnn_r50_2x": (MaskRCNN, dict(depth=50, **_C4_MASK), "2x"),
    "mask_rcnn_r50_fpn_1x": (MaskRCNN, dict(depth=50), "1x"),
    "mask_rcnn_r50_fpn_2x": (MaskRCNN, dict(depth=50), "2x"),
    "mask_rcnn_r50_vd_fpn_2x": (MaskRCNN, _R50_VD, "2x"),
    "mask_rcnn_r101_fpn_1x": (MaskRCNN, dict(depth=101), "1x"),
    "mask_rcnn_r101_vd_fpn_1x": (MaskRCNN, _R101_VD, "1x"),
    "mask_rcnn_x101_vd_64x4d_fpn_1x": (MaskRCNN, _X101_64X4D, "1x"),
    "mask_rcnn_x101_vd_64x4d_fpn_2x": (MaskRCNN, _X101_64X4D, "2x"),
    # Cascade R-CNN FPN (REFERENCE.md): three class-agnostic stages at IoU 0.5 / 0.6 / 0.7.
    "cascade_rcnn_r50_fpn_1x": (CascadeRCNN, dict(depth=50), "1x"),
    "cascade_mask_rcnn_r50_fpn_1x": (CascadeMaskRCNN, dict(depth=50), "1x"),
    "cascade_rcnn_dcn_r50_fpn_1x": (CascadeRCNN, dict(depth=50, **_DCN), "1x"),
    "cascade_rcnn_dcn_r101_vd_fpn_1x": (CascadeRCNN, dict(_R101_VD, **_DCN), "1x"),
    "cascade_rcnn_dcn_x101_vd_64x4d_fpn_1x": (CascadeRCNN, dict(_X101_64X4D, **_DCN), "1x"),
    # The static zoo's CascadeRCNNClsAware (cascade_rcnn_cls_aware_r101_vd_fpn_1x_softnms.yml):
    # class-specific regression per stage, 14x14 RoIs, Gaussian soft-NMS (sigma 0.5, score
    # 0.01, 300 kept).
    "cascade_rcnn_cls_aware_r101_vd_fpn_1x_softnms": (CascadeRCNN, _CLS_AWARE, "1x"),
    # The same weights under the multi-scale + flip test (its config sets ModelConfig.tta).
    "cascade_rcnn_cls_aware_r101_vd_fpn_ms_test": (CascadeRCNN, _CLS_AWARE, "1x"),
    "ssd_vgg16_300": (SSD, {}, "400k"),
    "ssd_vgg16_512": (SSD, _SSD512, "400k"),
    "ssd_vgg16_300_voc": (SSD, dict(_VOC, min_max_order=True), "120k"),
    "ssd_vgg16_512_voc": (SSD, dict(_SSD512, min_max_order=True, **_VOC), "120k"),
    "ssd_mobilenet_v1_voc": (SSD, dict(_SSD_MOBILENET, **_VOC), "28k"),
    "blazeface": (SSD, _BLAZEFACE, "1000e"),
    "blazeface_fpn_ssh": (SSD, _BLAZEFACE_FPN_SSH, "1000e"),
    "blazeface_lite": (SSD, _BLAZEFACE_LITE, "320k"),
    "blazeface_nas": (SSD, _BLAZEFACE_NAS, "320k"),
    "blazeface_nas_v2": (SSD, _BLAZEFACE_NAS_V2, "320k"),
    "faceboxes": (SSD, _FACEBOXES, "320k"),
    "faceboxes_lite": (SSD, _FACEBOXES_LITE, "320k"),
    "yolov3_darknet53": (YOLOv3, {}, "270e"),
    "yolov3_mobilenet_v1": (YOLOv3, dict(backbone="mobilenet_v1"), "270e"),
    "yolov3_r34": (YOLOv3, dict(backbone="resnet", depth=34), "270e"),
    # ResNet50-vd with DCNv2 in res5 only (REFERENCE.md); the COCO row and the Objects365-
    # pretrained one share this architecture.
    "yolov3_r50vd_dcn": (YOLOv3, dict(backbone="resnet", depth=50, variant="d",
                                      dcn_stages=(5,)), "270e"),
    "yolov3_darknet53_voc": (YOLOv3, dict(_VOC), "270e"),
    "yolov3_mobilenet_v1_voc": (YOLOv3, dict(_VOC, backbone="mobilenet_v1"), "270e"),
    "yolov3_r34_voc": (YOLOv3, dict(_VOC, backbone="resnet", depth=34), "270e"),
}
_SCHEDULES = ("_1x", "_2x")
# Foreground classes; the R-CNN heads add the background (81 outputs for COCO).
# (A row's own num_classes, e.g. 20 for the VOC rows, comes first.)
_DEFAULT_CLASSES = {RetinaNet: 80, FasterRCNN: 80, MaskRCNN: 80, CascadeRCNN: 80,
                    CascadeMaskRCNN: 80, SSD: 80, YOLOv3: 80}


def list_models():
    """Every registered zoo row, sorted."""
    return sorted(_ZOO)


def resolve(name):
    """The registered row a name refers to (a short alias gets the 1x row)."""
    if name in _ZOO:
        return name
    for suffix in _SCHEDULES:
        if name + suffix in _ZOO:
            return name + suffix
    raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")


def predicts_masks(name):
    """Whether the row predicts instance masks (its training data needs them)."""
    return getattr(_ZOO[resolve(name)][0], "predicts_masks", False)


def get(name, *, num_classes=None, weights=None, build_size=128, restoring=False,
        **overrides):
    """Builds a zoo model (weights created by one forward pass at build_size x build_size,
    or at the model's fixed input size).

    name: a row of list_models() (a 1x / 2x suffix may be left out); num_classes: foreground
    classes (the R-CNN heads add the background); overrides: architecture settings of the
    detector class (e.g. depth=18, norm='bn', score_threshold=0.3).
    weights: a Keras weights file, a tfdet checkpoint / run folder, or a PaddleDetection
    ImageNet backbone `.pdparams` (tfdet.convert.load_paddle_backbone); without it the model
    has random weights, and a warning says so unless restoring=True (the caller restores a
    checkpoint next). Whole PaddleDetection detectors convert with scripts/convert_weights.py,
    then load with tfdet.models.load(folder).

    Inputs: `model(images)` takes float32 RGB [B, H, W, 3] already resized, normalised and
    zero-padded, as the row's config's evaluation transform makes them (`tfdet.detect(model,
    image)` does all of it from a uint8 image or a file). "Normalised" is (pixel - mean) / std
    per RGB channel in 0..255 units:
      RetinaNet, Faster / Mask R-CNN: ImageNet mean (123.675, 116.28, 103.53), std (58.395,
        57.12, 57.375); short side 800, long side <= 1333; padded to a multiple of 128
        (RetinaNet) or 32 (R-CNN). Faster / Mask R-CNN and YOLOv3 also take
        `image_sizes` [B, 2] (h, w before padding) to clip to.
      SSD VGG16: mean (104, 117, 123), std 1; SSD MobileNetV1: mean and std 127.5; a square
        300 (512) input.
      YOLOv3: ImageNet mean / std; a square side that is a multiple of 32 (608, 416, 320).
    Outputs: {boxes [B, N, 4] xyxy in input pixels, scores [B, N], classes [B, N] int32
    (contiguous 0..K-1), num_detections [B] int32} (Mask R-CNN adds masks [B, N, m, m]: each
    box's mask probabilities). The SavedModel's signatures (tfdet.export) take uint8 images or
    encoded bytes and return the same detections as TF OD API outputs: detection_boxes
    normalised [y1, x1, y2, x2] of the original image, detection_scores, detection_classes
    (the data set's category ids, float32), num_detections (float32), detection_masks.
    """
    row = resolve(name)
    cls, settings, _ = _ZOO[row]
    kwargs = dict(settings)
    kwargs.update(overrides)
    kwargs["num_classes"] = num_classes or settings.get("num_classes") or _DEFAULT_CLASSES[cls]
    model = cls(name=_describe(row, settings, overrides), **kwargs)
    model.tfdet_row = row  # the zoo row (and config) it was built from
    # Models with one fixed input size (SSD) are built at that size.
    size = getattr(model, "fixed_input_size", None) or build_size
    _build(model, size)
    if weights:
        _load_weights(model, weights)
    elif not restoring and name not in _WARNED_UNTRAINED:
        _WARNED_UNTRAINED.add(name)
        from absl import logging
        logging.warning(
            "%s has random weights (no weights=): it detects nothing useful until trained or "
            "restored. The zoo's recipes start from an ImageNet backbone: "
            "weights='ResNet50_cos_pretrained.pdparams' (PaddleDetection's pretrain_weights, "
            "ModelConfig.weights in configs); trained PaddleDetection detectors convert with "
            "scripts/convert_weights.py.", model.name)
    return model


_WARNED_UNTRAINED = set()


def _build(model, size):
    """Creates the model's weights with one forward pass on zeros [1, size, size, 3], under
    the detector's `build_settings` (config values for that pass only, e.g. FasterRCNN's
    proposal counts)."""
    changes = getattr(model, "build_settings", {})
    config = model.config if changes else {}
    saved = {k: config[k] for k in changes}
    config.update(changes)
    try:
        model(np.zeros((1, size, size, 3), np.float32))
    finally:
        config.update(saved)


def _describe(row, settings, overrides):
    """The model's name: the row's, with its backbone token changed when overrides change the
    ResNet depth / variant (retinanet_r50_fpn_1x with depth 18 -> retinanet_r18_fpn_1x)."""
    import re
    depth = overrides.get("depth", settings.get("depth"))
    variant = overrides.get("variant", settings.get("variant", "b"))
    if ("depth" not in overrides and "variant" not in overrides) or depth is None:
        return row
    if (depth, variant) == (settings.get("depth"), settings.get("variant", "b")):
        return row
    token = f"r{depth}{'_vd' if variant == 'd' else ''}"
    return re.sub(r"(?<=_)(r|x)\d+(_vd)?(_\d+x\d+d)?(?=_|$)", token, row, count=1)


def _load_weights(model, weights):
    """A Keras weights file (.weights.h5 / .keras), a tfdet checkpoint (prefix or folder) or a
    PaddleDetection / PaddleClas ImageNet backbone (.pdparams: the backbone only, as the
    zoo's `pretrain_weights`; tfdet.convert.load_paddle_backbone)."""
    import os

    import tensorflow as tf
    if weights.endswith((".weights.h5", ".keras", ".h5")):
        model.load_weights(weights)
        return
    if weights.endswith(".pdparams"):
        from tfdet.convert import load_paddle_backbone
        load_paddle_backbone(model, weights)
        return
    from tfdet.training.checkpoints import resolve_checkpoint, restore_model
    if not (os.path.isdir(weights) or tf.io.gfile.exists(weights + ".index")):
        raise FileNotFoundError(f"weights {weights!r}: not a Keras weights file, a checkpoint "
                                "prefix or a run folder")
    restore_model(model, resolve_checkpoint(weights))


def load(run_dir, allow_config_imports=False):
    """The Keras model of a run folder (scripts/train.py or scripts/convert_weights.py) with
    its latest checkpoint's weights: config from run_dir/config.gin (else the config text in
    run.json), class count from run.json."""
    import os
    import tempfile

    from tfdet.config import load_experiment
    from tfdet.training.checkpoints import read_run_info, resolve_checkpoint, restore_run
    checkpoint = resolve_checkpoint(os.fspath(run_dir))
    info = read_run_info(checkpoint)
    config = os.path.join(os.path.dirname(checkpoint), "config.gin")
    if os.path.exists(config):
        exp = load_experiment(config, allow_imports=allow_config_imports)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".gin", delete=False) as f:
            f.write(info.get("config", ""))
        try:
            exp = load_experiment(f.name, allow_imports=allow_config_imports)
        finally:
            os.unlink(f.name)
    model, _, _ = restore_run(exp, checkpoint, info)
    # For tfdet.detect: the run's preprocessing and class names.
    model.tfdet_experiment = exp
    model.tfdet_class_names = info.get("class_names")
    return model
