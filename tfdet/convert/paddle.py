"""PaddleDetection 2.x weights -> tfdet models, by ppdet config name.

    model, report = from_paddle("retinanet_r50_fpn_1x_coco", read_pdparams(path))

`PADDLE_CONFIGS` names, for each ppdet 2.6.0 config tfdet can reproduce, the zoo row and the
overrides that give the architecture the weights were trained with (ppdet 2.x differs from the
static zoo in places: e.g. RetinaNet's P6 from P5). Tensor layouts: Paddle convs are
[out, in / groups, kh, kw] -> Keras [kh, kw, in / groups, out]; Paddle Linear is [in, out] as
Keras Dense. BatchNorm (weight, bias, _mean, _variance) is folded into tfdet's AffineChannel
(scale = weight / sqrt(variance + eps), bias = bias - mean * scale) where the row's norm is
'affine', or copied into a BatchNormalization otherwise. Every tfdet variable must receive
exactly one tensor of its shape and every Paddle tensor must be used: anything else is a
`ConversionError` listing the tensors, raised before the model is touched.
"""
import dataclasses
import os

import numpy as np

BN_EPSILON = 1e-5


class ConversionError(ValueError):
    """Weights that do not fit the architecture (names the tensors)."""


@dataclasses.dataclass(frozen=True)
class PaddleConfig:
    """A ppdet config tfdet reproduces: the zoo row, its overrides, and the mapping family."""
    row: str
    family: str
    overrides: dict
    num_classes: int = 80


# ppdet 2.x R-CNNs: RoIAlign aligned with adaptive sampling, proposals under 1 px dropped.
_PPDET_RCNN = dict(aligned=True, sampling_ratio=0, rpn_min_size=1.0)
# ppdet 2.x cascades' training: each stage's loss weighted 1/3 (CascadeHead's default), the
# ground truth added to the first stage's RoIs only (add_gt_as_proposals [True, False, False]).
_PPDET_CASCADE = dict(_PPDET_RCNN, cascade_loss_weights=(1 / 3, 1 / 3, 1 / 3),
                      cascade_add_gt=(True, False, False))

PADDLE_CONFIGS = {
    # ppdet 2.x RetinaNet: BN (folded), P6 / P7 from P5, anchors scale-major within a cell
    # (the converter reorders the head's outputs), top 1000 anchors per level by their best
    # class then Paddle's per-class NMS (1000 per class), boxes not clipped to the image.
    "retinanet_r50_fpn_1x_coco": PaddleConfig(
        "retinanet_r50_fpn_1x", "retinanet",
        dict(depth=50, fpn_extra="conv_p5", pre_nms="anchor", clip_boxes=False,
             smooth_l1_beta=0.0)),
    # ppdet 2.x Faster R-CNN FPN: BN (folded), RoIAlign aligned with adaptive sampling,
    # proposals narrower than 1 px dropped (Paddle's generate_proposals), background last.
    "faster_rcnn_r50_fpn_1x_coco": PaddleConfig(
        "faster_rcnn_r50_fpn_1x", "faster_rcnn",
        dict(_PPDET_RCNN, depth=50)),
    # ppdet 2.x Faster R-CNN C4: the FPN rows' differences, 14x14 RoIs from C4 through res5.
    "faster_rcnn_r50_1x_coco": PaddleConfig(
        "faster_rcnn_r50_1x", "faster_rcnn",
        dict(_PPDET_RCNN, depth=50)),
    "faster_rcnn_r50_vd_fpn_2x_coco": PaddleConfig(
        "faster_rcnn_r50_vd_fpn_2x", "faster_rcnn",
        dict(_PPDET_RCNN, depth=50, variant="d")),
    # ResNeXt-101-vd 64x4d: the same differences as the other FPN rows.
    "faster_rcnn_x101_vd_64x4d_fpn_1x_coco": PaddleConfig(
        "faster_rcnn_x101_vd_64x4d_fpn_1x", "faster_rcnn",
        dict(_PPDET_RCNN)),
    # DCNv2 in res3-res5 (ppdet's ConvNormLayer conv_offset -> the DeformableConv2D's
    # offset conv): the FPN rows' differences.
    "faster_rcnn_dcn_r50_fpn_1x_coco": PaddleConfig(
        "faster_rcnn_dcn_r50_fpn_1x", "faster_rcnn",
        dict(_PPDET_RCNN)),
    # ppdet 2.x GN rows (configs/gn): GroupNorm (ConvNormLayers) in the FPN and the heads
    # (4conv1fc box head, GN mask convs), frozen BN (folded) in the ResNet, as tfdet's GN
    # rows; the other FPN rows' differences.
    "faster_rcnn_r50_fpn_gn_2x_coco": PaddleConfig(
        "faster_rcnn_r50_fpn_gn_2x", "faster_rcnn", dict(_PPDET_RCNN)),
    "mask_rcnn_r50_fpn_gn_2x_coco": PaddleConfig(
        "mask_rcnn_r50_fpn_gn_2x", "mask_rcnn", dict(_PPDET_RCNN)),
    "cascade_rcnn_r50_fpn_gn_2x_coco": PaddleConfig(
        "cascade_rcnn_r50_fpn_gn_2x", "cascade_rcnn", dict(_PPDET_CASCADE)),
    "cascade_mask_rcnn_r50_fpn_gn_2x_coco": PaddleConfig(
        "cascade_mask_rcnn_r50_fpn_gn_2x", "cascade_mask_rcnn", dict(_PPDET_CASCADE)),
    # ppdet 2.x Mask R-CNN C4: Faster R-CNN C4's differences; the mask head is a deconv on the
    # res5 maps of each box (14x14 masks), as the zoo's.
    "mask_rcnn_r50_1x_coco": PaddleConfig(
        "mask_rcnn_r50_1x", "mask_rcnn",
        dict(_PPDET_RCNN, depth=50)),
    # ppdet 2.x Mask R-CNN FPN: the Faster R-CNN differences; 14x14 mask RoIs as the zoo's.
    "mask_rcnn_r50_fpn_1x_coco": PaddleConfig(
        "mask_rcnn_r50_fpn_1x", "mask_rcnn",
        dict(_PPDET_RCNN, depth=50)),
    # ppdet 2.x Cascade R-CNN FPN: the Faster R-CNN FPN differences, each stage's scores on
    # its own input boxes (as tfdet's); in training its stage loss weights (1/3 each) and
    # the ground truth in the first stage's RoIs only (_PPDET_CASCADE).
    "cascade_rcnn_r50_fpn_1x_coco": PaddleConfig(
        "cascade_rcnn_r50_fpn_1x", "cascade_rcnn",
        dict(_PPDET_CASCADE, depth=50)),
    "cascade_mask_rcnn_r50_fpn_1x_coco": PaddleConfig(
        "cascade_mask_rcnn_r50_fpn_1x", "cascade_mask_rcnn",
        dict(_PPDET_CASCADE, depth=50)),
    # ppdet 2.x YOLOv3 DarkNet-53 (608 test size): the static zoo's architecture; BN kept as
    # BN (inference uses its statistics); no label smoothing in its loss (the static zoo's
    # config smooths).
    "yolov3_darknet53_270e_coco": PaddleConfig(
        "yolov3_darknet53", "yolov3", dict(label_smooth=False)),
    # ppdet 2.x YOLOv3 MobileNetV1: C3 / C4 from blocks 4 and 6 (conv3_2, conv4_2), where the
    # static zoo takes blocks 5 and 11 (same channels, so the same parameter count).
    "yolov3_mobilenet_v1_270e_coco": PaddleConfig(
        "yolov3_mobilenet_v1", "yolov3", dict(mobilenet_blocks=(4, 6, 13), label_smooth=False)),
    # ppdet 2.x YOLOv3 ResNet-34: the zoo's architecture (res2a with a projection shortcut).
    "yolov3_r34_270e_coco": PaddleConfig("yolov3_r34", "yolov3", dict(label_smooth=False)),
    # ppdet 2.x YOLOv3 ResNet50-vd, DCNv2 in res5.
    "yolov3_r50vd_dcn_270e_coco": PaddleConfig(
        "yolov3_r50vd_dcn", "yolov3", dict(label_smooth=False)),
    # ppdet 2.x SSD: softmax background last (moved to slot 0), boxes clipped only after NMS;
    # the MobileNet extras use ReLU6.
    "ssd_vgg16_300_240e_voc": PaddleConfig(
        "ssd_vgg16_300_voc", "ssd", dict(clip_boxes=False), num_classes=20),
    "ssd_mobilenet_v1_300_120e_voc": PaddleConfig(
        "ssd_mobilenet_v1_voc", "ssd", dict(clip_boxes=False, extra_activation="relu6"),
        num_classes=20),
    # ppdet 2.6.0 BlazeFace (face_detection/blazeface_1000e.yml): the blazeface row; SSD's
    # post-processing (boxes clipped after NMS only).
    "blazeface_1000e": PaddleConfig("blazeface", "ssd", dict(clip_boxes=False), num_classes=1),
    "blazeface_fpn_ssh_1000e": PaddleConfig("blazeface_fpn_ssh", "ssd", dict(clip_boxes=False),
                                            num_classes=1),
}


def _conv_kernel(w, depthwise=False):
    """Paddle [out, in / groups, kh, kw] -> Keras [kh, kw, in / groups, out]; depthwise
    [C, 1, kh, kw] -> Keras DepthwiseConv2D [kh, kw, C, 1]."""
    if w.ndim == 4:
        return np.transpose(w, (2, 3, 0, 1) if depthwise else (2, 3, 1, 0))
    raise ConversionError(f"expected a 4-d conv weight, got shape {w.shape}")


class _Mapping:
    """Collects {tfdet variable path: array} from a Paddle state dict, tracking use."""

    def __init__(self, state, model):
        self.state = state
        self.used = set()
        self.values = {}
        self.missing = []
        self.paths = {w.path: w for w in model.weights}

    def has(self, name):
        return name in self.state

    def take(self, name):
        if name not in self.state:
            self.missing.append(name)
            return None
        self.used.add(name)
        return np.asarray(self.state[name], np.float32)

    def put(self, path, value):
        if value is not None:
            self.values[path] = value

    def layer_vars(self, layer):
        prefix = layer + "/"
        return {p[len(prefix):] for p in self.paths if p.startswith(prefix)}

    def conv(self, layer, prefix, out_perm=None, depthwise=False):
        """Conv `prefix`.weight (and .bias if tfdet's layer has one) -> tfdet `layer`;
        out_perm: tfdet output channel c takes Paddle's out_perm[c]."""
        w = self.take(f"{prefix}.weight")
        if w is not None:
            w = _conv_kernel(w, depthwise)
            if out_perm is not None and w.shape[-1] == len(out_perm):
                w = w[..., out_perm]
        self.put(f"{layer}/kernel", w)
        if "bias" in self.layer_vars(layer):
            b = self.take(f"{prefix}.bias")
            if b is not None and out_perm is not None and len(b) == len(out_perm):
                b = b[out_perm]
            self.put(f"{layer}/bias", b)

    def norm(self, layer, prefix, eps=BN_EPSILON):
        """BatchNorm `prefix` -> tfdet `layer` (AffineChannel: folded; BatchNorm: copied)."""
        names = self.layer_vars(layer)
        weight, bias = self.take(f"{prefix}.weight"), self.take(f"{prefix}.bias")
        if "scale" in names:  # AffineChannel
            mean, var = self.take(f"{prefix}._mean"), self.take(f"{prefix}._variance")
            if any(v is None for v in (weight, bias, mean, var)):
                return
            scale = weight / np.sqrt(var + eps)
            self.put(f"{layer}/scale", scale)
            self.put(f"{layer}/bias", bias - mean * scale)
        elif "moving_mean" in names:
            self.put(f"{layer}/gamma", weight)
            self.put(f"{layer}/beta", bias)
            self.put(f"{layer}/moving_mean", self.take(f"{prefix}._mean"))
            self.put(f"{layer}/moving_variance", self.take(f"{prefix}._variance"))
        else:  # GroupNorm
            self.put(f"{layer}/gamma", weight)
            self.put(f"{layer}/beta", bias)

    def conv_norm(self, layer, prefix, norm="norm", conv="conv", depthwise=False):
        """ppdet ConvNormLayer `prefix` (.conv, .norm; DarkNet's ConvBNLayer: .batch_norm;
        MobileNet's: ._conv, ._batch_norm) -> tfdet `layer`_conv / `layer`_norm."""
        self.conv(f"{layer}_conv", f"{prefix}.{conv}", depthwise=depthwise)
        if "offset_kernel" in self.layer_vars(f"{layer}_conv"):  # DCNv2: ppdet's conv_offset
            w = self.take(f"{prefix}.conv_offset.weight")
            self.put(f"{layer}_conv/offset_kernel", None if w is None else _conv_kernel(w))
            self.put(f"{layer}_conv/offset_bias", self.take(f"{prefix}.conv_offset.bias"))
        self.norm(f"{layer}_norm", f"{prefix}.{norm}")

    def finish(self, what, partial=False):
        """Raises ConversionError unless every variable got a tensor of its shape and every
        tensor was used; returns {path: array}. partial: only the variables the mapping named
        must be filled (the rest of the model keeps its values), and unused tensors are
        allowed (`self.unused` lists them)."""
        problems = [f"missing Paddle tensor {n}" for n in self.missing]
        for path, var in self.paths.items():
            if path not in self.values:
                if not partial:
                    problems.append(f"no Paddle tensor for tfdet variable {path}")
            elif tuple(self.values[path].shape) != tuple(var.shape):
                problems.append(f"shape mismatch for {path}: Paddle gives "
                                f"{tuple(self.values[path].shape)}, tfdet has {tuple(var.shape)}")
        problems += [f"no tfdet variable {p} (named by the mapping)"
                     for p in self.values if p not in self.paths]
        self.unused = sorted(set(self.state) - self.used)
        if not partial:
            problems += [f"unused Paddle tensor {n} {tuple(self.state[n].shape)}"
                         for n in self.unused]
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ConversionError(f"{what}: {len(problems)} problem(s):\n  {shown}{more}")
        return self.values


def _block_names(stage, count):
    """ppdet's block names in a ResNet stage (NameAdapter.fix_layer_warp_name)."""
    if count > 10 and stage == 4:
        return [f"res{stage}a"] + [f"res{stage}b{i}" for i in range(1, count)]
    return [f"res{stage}{chr(ord('a') + i)}" for i in range(count)]


def map_resnet(m, depth, variant, num_stages=4, prefix="backbone"):
    """ppdet ResNet(-vd) / ResNeXt(-vd) -> tfdet.backbones.resnet layer names."""
    from tfdet.backbones.resnet import DEPTHS
    kind, blocks = DEPTHS[depth]
    if variant == "d":
        for i in (1, 2, 3):
            m.conv_norm(f"stem{i}", f"{prefix}.conv1.conv1_{i}")
    else:
        stem = f"{prefix}.conv1.conv1"
        if not m.has(f"{stem}.conv.weight") and m.has(f"{prefix}.res_conv1.conv.weight"):
            stem = f"{prefix}.res_conv1"
        m.conv_norm("stem", stem)
    for index, count in enumerate(blocks[:num_stages]):
        map_resnet_stage(m, index + 2, count, kind, prefix)


def map_resnet_stage(m, stage, count, kind, prefix="backbone"):
    """One ppdet ResNet stage `prefix`.res<stage> -> tfdet res<stage>_<block>_<branch>."""
    branches = ("a", "b") if kind == "basic" else ("a", "b", "c")
    for b, name in enumerate(_block_names(stage, count)):
        p = f"{prefix}.res{stage}.{name}"
        for branch in branches:
            m.conv_norm(f"res{stage}_{b}_{branch}", f"{p}.branch2{branch}")
        short = f"{p}.short"
        if m.has(f"{short}.conv.conv.weight"):  # vd: pool then ConvNormLayer
            short = f"{short}.conv"
        if m.has(f"{short}.conv.weight"):
            m.conv_norm(f"res{stage}_{b}_short", short)


def _conv_maybe_norm(m, layer, prefix, norm_layer):
    """A conv that tfdet may follow by a norm (`norm_layer`): ppdet's ConvNormLayer (.conv,
    .norm) when tfdet has the norm (the GN rows), else a plain Conv2D."""
    if m.layer_vars(norm_layer):
        m.conv(layer, f"{prefix}.conv")
        m.norm(norm_layer, f"{prefix}.norm")
    else:
        m.conv(layer, prefix)


def map_fpn(m, levels, top, extra_levels=(), prefix="neck", name="fpn"):
    """ppdet FPN -> tfdet.necks.fpn: laterals fpn_inner_res{l}_sum(_lateral), outputs
    fpn_res{l}_sum, extra convs fpn_{l}; with norm_type gn each is a ConvNormLayer."""
    for level in levels:
        lateral = f"fpn_inner_res{level}_sum" + ("" if level == top else "_lateral")
        for layer, paddle in ((f"{name}_lateral{level}", lateral),
                              (f"{name}_output{level}", f"fpn_res{level}_sum")):
            _conv_maybe_norm(m, layer, f"{prefix}.{paddle}", f"{layer}_gn")
    for level in extra_levels:
        _conv_maybe_norm(m, f"{name}_extra{level}", f"{prefix}.fpn_{level}",
                         f"{name}_extra{level}_gn")


def anchor_order(num_scales, num_ratios):
    """tfdet's anchor a = ratio * S + scale holds ppdet's anchor scale * R + ratio: the
    permutation p with tfdet[a] = ppdet[p[a]]."""
    return np.asarray([s * num_ratios + r for r in range(num_ratios) for s in range(num_scales)])


def _channel_perm(anchor_perm, per_anchor):
    return (anchor_perm[:, None] * per_anchor + np.arange(per_anchor)[None]).reshape(-1)


def map_retinanet(m, model):
    c = model.config
    map_resnet(m, c["depth"], c["variant"])
    extra = range(6, c["max_level"] + 1)
    map_fpn(m, range(c["min_level"], 6), 5, extra)
    for i in range(model.head.num_convs):
        m.conv(f"head/class_tower/class_conv{i}",
               f"head.conv_feat.fcos_head_cls_tower_conv_{i}.conv")
        m.conv(f"head/box_tower/box_conv{i}", f"head.conv_feat.fcos_head_reg_tower_conv_{i}.conv")
    perm = anchor_order(c["num_scales"], len(c["ratios"]))
    m.conv("head/class_out", "head.retina_cls", _channel_perm(perm, model.num_classes))
    m.conv("head/box_out", "head.retina_reg", _channel_perm(perm, 4))


def map_faster_rcnn(m, model):
    """ppdet FasterRCNN (FPN or C4) -> tfdet FasterRCNN. ppdet's classifier puts the
    background last and its regressor has no background deltas: tfdet's background (index 0)
    takes ppdet's last logit and zero deltas. FPN: fc6 reads RoI features flattened C, H, W in
    ppdet and H, W, C in tfdet, so its rows are reordered. C4: res5 is the RoI head, and the
    RPN's 15 anchors per cell are ordered size-major in ppdet (channels permuted)."""
    from tfdet.backbones.resnet import DEPTHS
    c = model.config
    c4 = c["neck"] == "c4"
    map_resnet(m, c["depth"], c["variant"], num_stages=3 if c4 else 4)
    if not c4:
        map_fpn(m, range(2, 6), 5)
    m.conv("rpn_head/conv", "rpn_head.rpn_feat.rpn_conv")
    perm = anchor_order(len(c["anchor_sizes"]) if c4 else 1, len(c["ratios"]))
    m.conv("rpn_head/objectness", "rpn_head.rpn_rois_score", perm)
    m.conv("rpn_head/deltas", "rpn_head.rpn_rois_delta", _channel_perm(perm, 4))
    if c4:
        kind, blocks = DEPTHS[c["depth"]]
        map_resnet_stage(m, 5, blocks[3], kind, "bbox_head.head")
        map_predictors(m, "bbox_head")
    elif "cascade_ious" in c:  # CascadeHead: a TwoFCHead and predictors per stage
        for i, head in enumerate(model.roi_heads.box_heads):
            map_box_head(m, model, f"bbox_head.head.{i}", c["roi_size"], c["fpn_channels"],
                         head.name, predictors=("bbox_head", f"_stage{i}"),
                         conv_names=f"stage{i}_bbox_head_conv")
    else:
        map_box_head(m, model, "bbox_head.head", c["roi_size"], c["fpn_channels"])


def map_box_head(m, model, prefix, roi_size, channels, box_head="box_head",
                 predictors=("bbox_head", ""), conv_names="bbox_head_conv"):
    """ppdet TwoFCHead, or XConvNormHead (ConvNormLayers {conv_names}{i}, then fc6: the GN
    rows' 4conv1fc; a cascade's stage i names them stage{i}_bbox_head_conv), under `prefix`,
    and its predictors ({prefix}.bbox_score{suffix}, {prefix}.bbox_delta{suffix} for
    predictors=(prefix, suffix)) -> tfdet FCBoxHead."""
    head = next(h for h in model.roi_heads.box_heads if h.name == box_head)
    for i in range(head.num_convs):
        layer = f"{box_head}/convs/conv{i + 1}"
        m.conv(layer, f"{prefix}.{conv_names}{i}.conv")
        m.norm(f"{layer}_norm", f"{prefix}.{conv_names}{i}.norm")
    if head.num_convs:
        channels = head.conv_dim
    fc6 = m.take(f"{prefix}.fc6.weight")
    if fc6 is not None and fc6.shape[0] == channels * roi_size * roi_size:
        fc6 = fc6.reshape(channels, roi_size, roi_size, -1).transpose(1, 2, 0, 3)
        fc6 = fc6.reshape(roi_size * roi_size * channels, -1)
    m.put(f"{box_head}/fcs/fc1/kernel", fc6)
    m.put(f"{box_head}/fcs/fc1/bias", m.take(f"{prefix}.fc6.bias"))
    if head.num_fc > 1:
        m.put(f"{box_head}/fcs/fc2/kernel", m.take(f"{prefix}.fc7.weight"))
        m.put(f"{box_head}/fcs/fc2/bias", m.take(f"{prefix}.fc7.bias"))
    map_predictors(m, *predictors, box_head=box_head)


def map_predictors(m, prefix, suffix="", box_head="box_head"):
    """ppdet bbox_score / bbox_delta (+ suffix) -> tfdet classifier / regressor (background
    moved; a class-agnostic delta [D, 4] becomes the foreground slot of tfdet's [D, 8])."""
    w = m.take(f"{prefix}.bbox_score{suffix}.weight")
    b = m.take(f"{prefix}.bbox_score{suffix}.bias")
    if w is not None and b is not None:  # background last -> first
        w, b = np.roll(w, 1, axis=-1), np.roll(b, 1)
    m.put(f"{box_head}/classifier/kernel", w)
    m.put(f"{box_head}/classifier/bias", b)
    w = m.take(f"{prefix}.bbox_delta{suffix}.weight")
    b = m.take(f"{prefix}.bbox_delta{suffix}.bias")
    if w is not None and b is not None:  # zero deltas for the background
        w = np.concatenate([np.zeros((w.shape[0], 4), w.dtype), w], axis=1)
        b = np.concatenate([np.zeros(4, b.dtype), b])
    m.put(f"{box_head}/regressor/kernel", w)
    m.put(f"{box_head}/regressor/bias", b)


def map_mask_rcnn(m, model):
    """ppdet MaskRCNN (FPN) -> tfdet MaskRCNN: Faster R-CNN plus the mask head (4 convs, a
    2x2/2 transposed conv whose Paddle weight is [in, out, kh, kw], and per-class logits to
    which tfdet's background channel 0 is added as zeros)."""
    map_faster_rcnn(m, model)
    prefix, layers = "mask_head.head.upsample", "mask_head/mask_layers"
    for i in range(model.config["mask_num_convs"]):  # ConvNormLayers in the GN rows
        _conv_maybe_norm(m, f"{layers}/conv{i + 1}", f"{prefix}.mask_inter_feat_{i + 1}",
                         f"{layers}/conv{i + 1}_norm")
    m.conv(f"{layers}/deconv", f"{prefix}.conv5_mask")
    w, b = m.take("mask_head.mask_fcn_logits.weight"), m.take("mask_head.mask_fcn_logits.bias")
    if w is not None and b is not None:
        w = _conv_kernel(w)
        w = np.concatenate([np.zeros(w.shape[:-1] + (1,), w.dtype), w], axis=-1)
        b = np.concatenate([np.zeros(1, b.dtype), b])
    m.put(f"{layers}/mask_logits/kernel", w)
    m.put(f"{layers}/mask_logits/bias", b)


_MOBILENET_BLOCKS = (["conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2"]
                     + [f"conv5_{i}" for i in range(1, 7)] + ["conv6"])


def map_mobilenet_v1(m, prefix="backbone"):
    """ppdet MobileNet (conv1, then depthwise-separable conv2_1 .. conv6) -> tfdet
    mobilenet_v1 (stem, block1 .. block13, each _dw and _pw)."""
    bn, conv = "_batch_norm", "_conv"
    m.conv_norm("stem", f"{prefix}.conv1", bn, conv)
    for i, name in enumerate(_MOBILENET_BLOCKS, start=1):
        m.conv_norm(f"block{i}_dw", f"{prefix}.{name}._depthwise_conv", bn, conv,
                    depthwise=True)
        m.conv_norm(f"block{i}_pw", f"{prefix}.{name}._pointwise_conv", bn, conv)


def map_darknet53(m):
    """ppdet DarkNet (depth 53) -> tfdet darknet53."""
    from tfdet.backbones.darknet import _STAGES as DARKNET53_BLOCKS
    bn = "batch_norm"
    m.conv_norm("stem", "backbone.conv0", bn)
    for stage, blocks in enumerate(DARKNET53_BLOCKS):
        # ppdet names the downsampling conv before stage s+1 inside stage s, and a stage's
        # blocks basicblock0, then stage.<s>.<b>.
        down = ("backbone.downsample0" if stage == 0 else
                f"backbone.stage.{stage - 1}.downsample")
        m.conv_norm(f"stage{stage + 1}_down", f"{down}.conv_bn_layer", bn)
        for b in range(blocks):
            p = (f"backbone.stage.{stage}.basicblock0" if b == 0 else
                 f"backbone.stage.{stage}.stage.{stage}.{b}")
            m.conv_norm(f"stage{stage + 1}_block{b + 1}_a", f"{p}.conv1", bn)
            m.conv_norm(f"stage{stage + 1}_block{b + 1}_b", f"{p}.conv2", bn)


def _map_yolov3_backbone(m, c, darknet53=None, mobilenet_v1=None, resnet=None):
    """The YOLOv3 row's backbone by the given mappers (default: ppdet 2.x's; the static
    mapping passes its own)."""
    if c["backbone"] == "darknet53":
        (darknet53 or map_darknet53)(m)
    elif c["backbone"] == "mobilenet_v1":
        (mobilenet_v1 or map_mobilenet_v1)(m)
    else:
        (resnet or map_resnet)(m, c["depth"], c["variant"])


def map_yolov3(m, model):
    """ppdet YOLOv3 (DarkNet-53, MobileNet or ResNet; YOLOv3FPN, YOLOv3Head) -> tfdet YOLOv3.
    The output channels are laid out alike (per anchor: x, y, w, h, objectness, classes)."""
    _map_yolov3_backbone(m, model.config)
    bn = "batch_norm"
    for i in range(3):
        p = f"neck.yolo_block.{i}"
        for j in range(2):
            m.conv_norm(f"yolo_block{i}_{j}_a", f"{p}.conv_module.conv{2 * j}", bn)
            m.conv_norm(f"yolo_block{i}_{j}_b", f"{p}.conv_module.conv{2 * j + 1}", bn)
        m.conv_norm(f"yolo_block{i}_route", f"{p}.conv_module.route", bn)
        m.conv_norm(f"yolo_block{i}_tip", f"{p}.tip", bn)
        if i < 2:
            m.conv_norm(f"yolo_transition{i}", f"neck.yolo_transition.{i}", bn)
        m.conv(f"output{i}", f"yolo_head.yolo_output.{i}")


def map_vgg16(m, fc_optional=False):
    """ppdet VGG's conv blocks and fc6 / fc7 (convs) -> tfdet vgg16; fc_optional: map
    fc6 / fc7 only when the checkpoint has them (ImageNet files may not)."""
    from tfdet.backbones.vgg import _BLOCKS as VGG_BLOCKS
    for block, (_, convs) in enumerate(VGG_BLOCKS, start=1):
        for i in range(1, convs + 1):
            m.conv(f"conv{block}_{i}", f"backbone.conv_block_{block - 1}.conv{i - 1}")
    for fc in ("fc6", "fc7"):
        if not fc_optional or m.has(f"backbone.{fc}.weight"):
            m.conv(fc, f"backbone.{fc}")


def map_blazenet(m, c, prefix="backbone"):
    """ppdet BlazeNet (conv1; blaze_<i> / double_blaze_<i> with <name>1_dw (or 1_dw_1,
    1_dw_2), conv_pw, <name>2_dw (or 2_dw_1, 2_dw_2), conv_pw2, <name>_shortcut_conv; each a
    ConvBNLayer of _conv, _batch_norm) -> tfdet blazenet (stem, blaze<i> / double_blaze<i>
    with _dw1, _pw1, _dw2, _pw2, _shortcut)."""
    from tfdet.backbones.blazenet import BLAZE_FILTERS, DOUBLE_BLAZE_FILTERS
    settings = dict(c.get("backbone_settings") or {})
    use_5x5 = settings.get("use_5x5", True)
    bn, conv = "_batch_norm", "_conv"
    m.conv_norm("stem", f"{prefix}.conv1", bn, conv)

    def depthwise(ours, theirs):
        if use_5x5:
            m.conv_norm(ours, theirs, bn, conv, depthwise=True)
        else:
            for part in (1, 2):
                m.conv_norm(f"{ours}_{part}", f"{theirs}_{part}", bn, conv, depthwise=True)

    blocks = [(f"blaze{i}", f"blaze_{i}", f, False) for i, f in
              enumerate(settings.get("blaze_filters", BLAZE_FILTERS))]
    blocks += [(f"double_blaze{i}", f"double_blaze_{i}", f, True) for i, f in
               enumerate(settings.get("double_blaze_filters", DOUBLE_BLAZE_FILTERS))]
    for ours, theirs, filters, double in blocks:
        p = f"{prefix}.{theirs}"
        depthwise(f"{ours}_dw1", f"{p}.{theirs}1_dw")
        m.conv_norm(f"{ours}_pw1", f"{p}.conv_pw", bn, conv)
        if double:
            depthwise(f"{ours}_dw2", f"{p}.{theirs}2_dw")
            m.conv_norm(f"{ours}_pw2", f"{p}.conv_pw2", bn, conv)
        if len(filters) == (4 if double else 3) and filters[-1] > 1:
            m.conv_norm(f"{ours}_shortcut", f"{p}.{theirs}_shortcut_conv", bn, conv)


def map_blazeface_neck(m, neck_type):
    """ppdet BlazeNeck (fpn.conv1_fpn / conv2_fpn / conv3_fpn; ssh<i>.conv0_ssh ...
    conv4_ssh, ConvBNLayers of _conv, _batch_norm) -> tfdet.necks.blazeface."""
    bn, conv = "_batch_norm", "_conv"
    if neck_type != "only_ssh":
        for ours, theirs in (("output1", 1), ("output2", 2), ("merge", 3)):
            m.conv_norm(f"fpn_{ours}", f"neck.fpn.conv{theirs}_fpn", bn, conv)
    if neck_type != "only_fpn":
        for i in (1, 2):
            for j, ours in enumerate(("conv3", "conv5_1", "conv5_2", "conv7_1", "conv7_2")):
                m.conv_norm(f"ssh{i}_{ours}", f"neck.ssh{i}.conv{j}_ssh", bn, conv)


def map_ssd(m, model):
    """ppdet SSD (VGG with its L2-normalised conv4_3 and extra convs, or MobileNet with
    ExtraBlocks; SSDHead boxes<i> / scores<i>) -> tfdet SSD. ppdet's softmax has the
    background last in each prior's K + 1 logits, tfdet's first: the class convs' output
    channels are permuted."""
    c = model.config
    if c["backbone"] == "vgg16":
        map_vgg16(m)
        (var,) = m.layer_vars("conv4_3_norm")
        m.put(f"conv4_3_norm/{var}", m.take("backbone.norm0.scale"))
        for i in range(1, len(c["extras"]) + 1):
            for j in (1, 2):
                m.conv(f"extra{i}_{j}_conv", f"backbone.conv{5 + i}.conv{j - 1}")
    elif c["backbone"] == "blazenet":  # BlazeFace: no extras; the head is ppdet's FaceHead
        map_blazenet(m, c)
        if c.get("neck"):
            map_blazeface_neck(m, c["neck"])
    else:
        map_mobilenet_v1(m)
        for i in range(1, len(c["extras"]) + 1):
            p = f"backbone.conv7_{i}"
            m.conv_norm(f"extra{i}_1", f"{p}.pointwise_conv", "_batch_norm", "_conv")
            m.conv_norm(f"extra{i}_2", f"{p}.normal_conv", "_batch_norm", "_conv")
    head = "blaze_head" if c["backbone"] == "blazenet" else "ssd_head"
    k = model.num_classes + 1
    for i, priors in enumerate(model.head.priors_per_cell):
        m.conv(f"head/box{i}", f"{head}.boxes{i}")
        # tfdet's (prior a, class j) takes ppdet's (a, (j - 1) mod (K + 1)).
        perm = (np.arange(priors)[:, None] * k + (np.arange(k) - 1) % k).reshape(-1)
        m.conv(f"head/class{i}", f"{head}.scores{i}", perm)


def map_backbone(m, model):
    """The backbone of any tfdet detector from Paddle names under `backbone.` (an ImageNet
    checkpoint as ppdet's `pretrain_weights` loads it): ResNet(-vd) / ResNeXt for RetinaNet
    and the R-CNNs (C4: res5 too, into the RoI head), DarkNet-53 / MobileNetV1 / ResNet for
    YOLOv3, VGG16's conv1-conv5 (and fc6 / fc7 when present) / MobileNetV1 for SSD."""
    from tfdet.backbones.resnet import DEPTHS
    c = model.config
    kind = type(model).__name__
    if kind in ("RetinaNet", "FasterRCNN", "MaskRCNN", "CascadeRCNN", "CascadeMaskRCNN"):
        c4 = c.get("neck") == "c4"
        map_resnet(m, c["depth"], c["variant"], num_stages=3 if c4 else 4)
        if c4:
            block, blocks = DEPTHS[c["depth"]]
            map_resnet_stage(m, 5, blocks[3], block, "backbone")
    elif kind == "YOLOv3":
        _map_yolov3_backbone(m, c)
    elif kind == "SSD" and c["backbone"] == "vgg16":
        map_vgg16(m, fc_optional=True)
    elif kind == "SSD" and c["backbone"] == "blazenet":
        map_blazenet(m, c)
    elif kind == "SSD":
        map_mobilenet_v1(m)
    else:
        raise ConversionError(f"no Paddle backbone mapping for {kind}")


# Keys of a whole ppdet detector (not a backbone checkpoint).
_DETECTOR_PREFIXES = ("neck.", "head.", "rpn_head.", "bbox_head.", "mask_head.", "yolo_head.",
                      "ssd_head.", "blaze_head.")


def load_paddle_backbone(model, path):
    """Initialises `model`'s backbone from a PaddleDetection / PaddleClas ImageNet checkpoint
    (`.pdparams`, keys as ppdet's backbones name them, with or without `backbone.`; ppdet's
    `pretrain_weights`), BN statistics folded or copied as the backbone's norm needs. The
    rest of the model keeps its values; tensors the backbone does not use (the classifier)
    are listed in the returned report. Whole-detector files are refused: convert those with
    scripts/convert_weights.py. Returns {"assigned": n, "unused": [names]}."""
    from tfdet.convert.pdparams import read_pdparams
    from tfdet.convert.static import is_static_state, load_static_backbone
    state = read_pdparams(path)
    if is_static_state(state):  # a fluid.save checkpoint of the static zoo's backbones
        return load_static_backbone(model, path, state)
    detector = sorted(k for k in state if k.startswith(_DETECTOR_PREFIXES))
    if detector:
        raise ConversionError(
            f"{path}: holds a whole detector ({detector[0]}, ...), not a backbone; convert it "
            "with scripts/convert_weights.py --paddle_config NAME")
    state = {"backbone." + k.removeprefix("backbone."): v for k, v in state.items()}
    m = _Mapping(state, model)
    map_backbone(m, model)
    values = m.finish(f"{path} (backbone of {model.name})", partial=True)
    variables = {w.path: w for w in model.weights}
    for name, value in values.items():
        variables[name].assign(value.astype(variables[name].dtype))
    unused = [k.removeprefix("backbone.") for k in m.unused]
    if unused:
        from absl import logging
        logging.info("%s: %d tensors not used by the backbone: %s", path, len(unused),
                     ", ".join(unused[:10]) + (" ..." if len(unused) > 10 else ""))
    return {"assigned": len(values), "unused": unused}


FAMILIES = {"retinanet": map_retinanet, "faster_rcnn": map_faster_rcnn,
            "mask_rcnn": map_mask_rcnn, "cascade_rcnn": map_faster_rcnn,
            "cascade_mask_rcnn": map_mask_rcnn, "yolov3": map_yolov3, "ssd": map_ssd}


def paddle_config(name):
    """The PaddleConfig of a ppdet config name (with or without .yml / a folder)."""
    key = name.rsplit("/", 1)[-1].removesuffix(".yml")
    if key not in PADDLE_CONFIGS:
        raise ConversionError(f"unknown PaddleDetection config {name!r}; tfdet converts: "
                              f"{', '.join(sorted(PADDLE_CONFIGS))}")
    return PADDLE_CONFIGS[key]


def build_for_paddle(name, num_classes=None, **settings):
    """The tfdet model (untouched weights) that reproduces ppdet config `name`, with
    (row, overrides) for config files; settings: test-time changes on top (e.g.
    test_post_nms_top_k, as a changed ppdet config would have)."""
    from tfdet import models
    spec = paddle_config(name)
    model = models.get(spec.row, num_classes=num_classes or spec.num_classes,
                       **dict(spec.overrides, **settings))
    return model, spec


def convert_state(state, model, family, what="weights"):
    """{tfdet variable path: array} for `model` from a Paddle state dict, or ConversionError."""
    m = _Mapping(state, model)
    FAMILIES[family](m, model)
    return m.finish(what)


def assign(model, values):
    """Writes {path: array} into the model's variables (all checked beforehand)."""
    for w in model.weights:
        w.assign(values[w.path].astype(w.dtype))


def from_paddle(name, state, num_classes=None, what="weights", **settings):
    """A tfdet model with the weights of ppdet config `name` from state {name: array}.

    num_classes: for weights trained on other data (default: the config's); settings: see
    build_for_paddle. Returns (model, spec). Raises ConversionError naming every mismatched
    tensor.
    """
    if num_classes is None:
        num_classes = _infer_classes(state, paddle_config(name))
    model, spec = build_for_paddle(name, num_classes, **settings)
    assign(model, convert_state(state, model, spec.family, what))
    return model, spec


def _infer_classes(state, spec):
    if spec.family == "retinanet" and "head.retina_cls.weight" in state:
        anchors = state["head.retina_reg.weight"].shape[0] // 4
        return state["head.retina_cls.weight"].shape[0] // anchors
    if "yolo_head.yolo_output.0.weight" in state:
        return state["yolo_head.yolo_output.0.weight"].shape[0] // 3 - 5
    for head in ("ssd_head", "blaze_head"):
        if f"{head}.scores0.weight" in state and f"{head}.boxes0.weight" in state:
            priors = state[f"{head}.boxes0.weight"].shape[0] // 4
            return state[f"{head}.scores0.weight"].shape[0] // priors - 1
    if "bbox_head.bbox_score.weight" in state:
        return state["bbox_head.bbox_score.weight"].shape[-1] - 1
    return spec.num_classes


def _config_text(spec, num_classes, configs_dir):
    """config.gin of a converted checkpoint: the zoo row's operative config (data, schedule,
    evaluation settings; self-contained) with the ppdet model overrides."""
    bindings = [f"ModelConfig.name = '{spec.row}'",
                f"ModelConfig.num_classes = {num_classes}",
                f"ModelConfig.overrides = {spec.overrides!r}",
                # ppdet pads test images to a multiple of 32 (PadBatch pad_to_stride).
                "DataConfig.size_divisor = 32"]
    header = (f"# Converted from PaddleDetection weights: zoo row {spec.row} with the ppdet 2.x "
              "architecture (tfdet.convert.PADDLE_CONFIGS).\n")
    return zoo_config_text(spec.row, bindings, header, configs_dir)


def zoo_config_text(row, bindings, header, configs_dir):
    """`header` + the zoo row's operative config with `bindings` on top (the bindings alone
    when the row has no config file in configs_dir)."""
    zoo_config = os.path.join(configs_dir, f"{row}.gin") if configs_dir else None
    if not (zoo_config and os.path.exists(zoo_config)):
        return header + "\n".join(bindings) + "\n"
    from tfdet.config import load_experiment
    return header + load_experiment(zoo_config, bindings).config_text


def convert_paddle_checkpoint(paddle_config_name, weights, output, num_classes=None,
                              class_names=None, category_ids=None, configs_dir=None):
    """Converts a ppdet `.pdparams` into a tfdet run folder `output`: a checkpoint (ckpt-0)
    that eval.py / export.py / train.py take with --checkpoint, run.json (class map) and
    config.gin. Class names default to COCO's 80 when the weights have 80 classes.

    Everything is checked before anything is written, and the folder appears whole (written
    beside it, then renamed); an existing `output` is refused. Returns the checkpoint prefix.
    """
    from tfdet.config_files import CONFIGS
    from tfdet.convert.pdparams import read_pdparams

    output = os.path.abspath(output)
    if os.path.exists(output):
        raise FileExistsError(f"{output} exists; give a new folder")
    state = read_pdparams(weights)
    spec = paddle_config(paddle_config_name)
    num_classes = _check_classes(weights, _infer_classes(state, spec), num_classes)
    class_names, category_ids = _class_map(weights, num_classes, class_names, category_ids)
    model, spec = from_paddle(paddle_config_name, state, num_classes, what=str(weights))
    config = _config_text(spec, num_classes, configs_dir or CONFIGS)
    return write_run_folder(model, output, config, class_names, category_ids, {
        "paddle_config": paddle_config_name, "weights": os.path.abspath(weights)})


def _check_classes(weights, inferred, num_classes):
    if num_classes is not None and inferred is not None and num_classes != inferred:
        raise ConversionError(f"{weights}: the weights have {inferred} classes, "
                              f"--num_classes says {num_classes}")
    return inferred if inferred is not None else num_classes


def _class_map(weights, num_classes, class_names, category_ids):
    """(class names, category ids): COCO's for 80-class weights unless names are given."""
    from tfdet.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
    if class_names is None:
        if num_classes != len(COCO_CLASS_NAMES):
            raise ConversionError(f"{weights}: {num_classes} classes: give their names "
                                  "(--class_names FILE, one per line)")
        class_names, category_ids = COCO_CLASS_NAMES, COCO_CATEGORY_IDS
    if len(class_names) != num_classes:
        raise ConversionError(f"{len(class_names)} class names for {num_classes} classes")
    return list(class_names), list(category_ids or range(1, num_classes + 1))


def write_run_folder(model, output, config, class_names, category_ids, source):
    """Writes `model` as a run folder `output` (ckpt-0, config.gin, run.json with the class
    map and `converted_from` = source), whole or not at all. Returns the checkpoint prefix."""
    import shutil
    import tempfile

    import tensorflow as tf

    from tfdet.training.checkpoints import write_run_info_dict

    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".convert-", dir=parent)
    try:
        # The trainer's layout (CheckpointManager, relative paths), so the folder can move.
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), scratch, 1)
        prefix = manager.save(checkpoint_number=0)
        with open(os.path.join(scratch, "config.gin"), "w", encoding="utf-8") as f:
            f.write(config)
        write_run_info_dict(scratch, {
            "num_classes": len(class_names), "class_names": list(class_names),
            "category_ids": [int(c) for c in category_ids], "config": config,
            "converted_from": source})
        os.rename(scratch, output)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return os.path.join(output, os.path.basename(prefix))
