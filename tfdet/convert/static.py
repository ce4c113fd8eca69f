"""PaddleDetection static-graph zoo weights -> tfdet zoo rows, by the static code's names.

    model = from_static("faster_rcnn_r50_fpn_1x", read_static_params("faster_rcnn_r50_fpn_1x.tar"))

The static zoo (`static/ppdet`, PaddleDetection <= 2.3) names most parameters explicitly with
`ParamAttr(name=...)` (the rest get generated names, below), and its `.tar` files hold one
file per parameter under that name (`read_static_params`); `fluid.save` checkpoints hold the
same names in a `.pdparams` pickle (`read_pdparams`). tfdet's zoo rows follow the static zoo's architectures, so no overrides are
needed: the background is class 0 in both, the static class-specific regressors are
[D, 81 * 4] as tfdet's, the cascades' class-agnostic ones [D, 8], and the static
`anchor_generator` enumerates a cell's anchors aspect-ratio-major as tfdet does.

Names, from the static code (release/2.3 `static/ppdet/modeling`):
- ResNet / ResNet-vd / ResNeXt (`backbones/resnet.py`, `name_adapter.py`): `conv1_weights`
  (ResNeXt `res_conv1_weights`; vd `conv1_1/2/3_weights`), `res2a_branch2a_weights`,
  `res2a_branch1_weights` (projection shortcut), stage 4 of ResNet-101 `res4b1 .. res4b22`;
  norms `bn_conv1_*`, `bn1_1_*`, `bn2a_branch2a_*` with `_scale`, `_offset` (and `_mean`,
  `_variance` for BN rows and ImageNet weights; folded into tfdet's AffineChannel);
  DCNv2 offsets `res3a_branch2b_conv_offset.w_0` / `.b_0`.
- FPN (`backbones/fpn.py`): `fpn_inner_res5_sum_w/_b`, `fpn_inner_res4_sum_lateral_w/_b`,
  `fpn_res4_sum_w/_b`, extra levels `fpn_6_w`, `fpn_7_w`.
- RPN (`anchor_heads/rpn_head.py`): `conv_rpn_w`, `rpn_cls_logits_w`, `rpn_bbox_pred_w`
  (C4); `conv_rpn_fpn2_w`, `rpn_cls_logits_fpn2_w`, `rpn_bbox_pred_fpn2_w` (FPN, shared).
- Box heads (`roi_heads/bbox_head.py`, `cascade_head.py`): `fc6_w`, `fc7_w` (Paddle fc weights
  are [in, out]; fc6 reads RoI features flattened C, H, W), `cls_score_w`, `bbox_pred_w`;
  cascade stages 2 and 3 add `_2` / `_3` (`fc6_2_w`, `cls_score_3_w`).
- Mask head (`roi_heads/mask_head.py`): `mask_inter_feat_1_w` .. `_4_w`, `conv5_mask_w`
  (a transposed conv, [in, out, kh, kw]), `mask_fcn_logits_w` (81 classes with background).
- RetinaNet (`anchor_heads/retina_head.py`): `retnet_cls_conv_n{i}_fpn3_w`,
  `retnet_bbox_conv_n{i}_fpn3_w`, `retnet_cls_pred_fpn3_w`, `retnet_bbox_pred_fpn3_w`.
- DarkNet-53 (`backbones/darknet.py`): `yolo_input`, `yolo_input.downsample`,
  `stage.{s}.{b}.0` / `.1`, `stage.{s}.downsample`, each `.conv.weights` and
  `.bn.scale/.offset/.mean/.var`; YOLOv3 head (`anchor_heads/yolo_head.py`):
  `yolo_block.{i}.{j}.0` / `.1`, `yolo_block.{i}.2`, `yolo_block.{i}.tip`,
  `yolo_transition.{i}`, `yolo_output.{i}.conv.weights` / `.bias`.
- MobileNetV1 (`backbones/mobilenet.py`): `conv1_weights`, `conv2_1_dw_weights`,
  `conv2_1_sep_weights`, ..., norms `conv2_1_dw_bn_scale` etc.
- SSD (`backbones/vgg.py`, `mobilenet.py`): VGG `conv1_1_weights` / `_biases` .. `fc7`,
  `conv4_3_norm_scale`, extras `conv6_1` .. `conv9_2`; MobileNet extras
  `conv7_{i}_extra1` / `_extra2` with `_bn_*` norms. `fluid.layers.multi_box_head` names
  nothing: its loc and conf convs per feature map are `conv2d_N.w_0` / `.b_0`, the program's
  last unnamed convs, taken in creation order (N) and checked by shape.
- GroupNorm rows (`ops.py` ConvNorm, `configs/gn`): `<name>_weights` without a bias, then
  `<name>_scale` / `_offset`, for the FPN (`fpn_inner_res4_sum_lateral`, `fpn_res4_sum`), the
  4conv1fc box head (`bbox_head_conv0` .. `3`, then `fc6bbox_head_conv3_w`: the fc is named
  after the last conv) and the mask convs. The static cascade GN head overwrites its stage
  suffix with those conv names, so its three stages share the convs and fc6 (only
  `cls_score_2` etc. differ); tfdet's stages receive the same tensors.
- Face models (`backbones/blazenet.py`, `faceboxnet.py`, `architectures/blazeface.py`,
  `faceboxes.py`): convs `<name>_weights` (`conv1`, `blaze_0` + `1_dw`, `1_sep`, `2_dw`,
  `2_sep`, `shortcutblaze_2`; Lite `conv2_dw` .. `shortcutconv3`; FaceBoxes `conv_1`,
  `inceptionA_0_conv3_1`, `conv_3_2`), but `fluid.layers.batch_norm(input=conv)` names nothing:
  `batch_norm_N.w_0` / `.b_0` / `.w_1` / `.w_2` (scale, offset, mean, variance) in creation
  order, so the static code's order of conv-norm units is followed exactly. The static
  BlazeFace's double blocks have a dense 5x5 `2_dw` (the NAS rows' `dense_second_dw`); the
  blazeface row (ppdet 2.x's depthwise one) gets that setting when converted from static
  weights. The heads are `multi_box_head`-like (generated names, as SSD's).

Not mapped: BlazeFace-FPN-SSH (ppdet 2.x only). Every tfdet variable must receive exactly one
tensor of its shape and every tensor must be used, as for ppdet 2.x weights (ConversionError
otherwise; a tensor may serve several variables, as the cascade GN head's shared ones).
"""
import numpy as np

from tfdet.convert.paddle import (BN_EPSILON, ConversionError, _block_names, _conv_kernel,
                                  _map_yolov3_backbone, _Mapping, assign)


def _conv(m, layer, weight, bias=None, depthwise=False):
    """Static conv `weight` (and `bias` when tfdet's layer has one) -> tfdet `layer`."""
    w = m.take(weight)
    m.put(f"{layer}/kernel", None if w is None else _conv_kernel(w, depthwise))
    if "bias" in m.layer_vars(layer):
        m.put(f"{layer}/bias", m.take(bias))
    if "offset_kernel" in m.layer_vars(layer):  # DCNv2: the static `<name>_conv_offset`
        stem = weight.removesuffix("_weights")
        w = m.take(f"{stem}_conv_offset.w_0")
        m.put(f"{layer}/offset_kernel", None if w is None else _conv_kernel(w))
        m.put(f"{layer}/offset_bias", m.take(f"{stem}_conv_offset.b_0"))


def _norm(m, layer, scale, offset, mean, variance, eps=BN_EPSILON):
    """Static affine_channel (scale, offset) or batch_norm (+ mean, variance) -> tfdet `layer`:
    an AffineChannel takes scale / offset, folding the statistics when the file has them
    (BN rows, ImageNet weights); a BatchNormalization takes all four; a GroupNorm (static
    group_norm: scale, offset) two."""
    names = m.layer_vars(layer)
    s, b = m.take(scale), m.take(offset)
    if "scale" in names:  # AffineChannel
        if m.has(mean) or m.has(variance):
            mu, var = m.take(mean), m.take(variance)
            if any(v is None for v in (s, b, mu, var)):
                return
            s = s / np.sqrt(var + eps)
            b = b - mu * s
        m.put(f"{layer}/scale", s)
        m.put(f"{layer}/bias", b)
    else:
        m.put(f"{layer}/gamma", s)
        m.put(f"{layer}/beta", b)
        if "moving_mean" in names:  # BatchNormalization (GroupNorm has no statistics)
            m.put(f"{layer}/moving_mean", m.take(mean))
            m.put(f"{layer}/moving_variance", m.take(variance))


def _conv_maybe_gn(m, layer, norm_layer, name, w="_w", b="_b"):
    """A static conv that the GN rows build as ConvNorm (`name`_weights, then the GroupNorm
    `name`_scale / `name`_offset, no conv bias) and the others as a plain conv (`name` + w,
    `name` + b); tfdet's `norm_layer` tells which."""
    if m.layer_vars(norm_layer):
        _conv(m, layer, f"{name}_weights", f"{name}_bias")
        _norm(m, norm_layer, f"{name}_scale", f"{name}_offset", None, None)
    else:
        _conv(m, layer, f"{name}{w}", f"{name}{b}")


def _resnet_unit(m, layer, name):
    """A static ResNet `_conv_norm` `name` (conv `name`_weights, norm `bn` + name[3:], or
    `bn_conv1` for the stem) -> tfdet `layer`_conv / `layer`_norm."""
    bn = "bn_" + name if name == "conv1" else "bn" + name[3:]
    _conv(m, f"{layer}_conv", f"{name}_weights")
    _norm(m, f"{layer}_norm", f"{bn}_scale", f"{bn}_offset", f"{bn}_mean", f"{bn}_variance")


def map_resnet(m, depth, variant, stages=(2, 3, 4, 5)):
    """Static ResNet(-vd) / ResNeXt stem and `stages` -> tfdet.backbones.resnet names."""
    from tfdet.backbones.resnet import DEPTHS
    if stages and stages[0] == 2:
        if variant == "d":
            for i in (1, 2, 3):
                _resnet_unit(m, f"stem{i}", f"conv1_{i}")
        else:  # ResNeXt names its stem res_conv1 (norm bn_conv1)
            stem = "res_conv1" if m.has("res_conv1_weights") else "conv1"
            _resnet_unit(m, "stem", stem)
    kind, blocks = DEPTHS[depth]
    branches = ("a", "b") if kind == "basic" else ("a", "b", "c")
    for stage in stages:
        for b, name in enumerate(_block_names(stage, blocks[stage - 2])):
            for branch in branches:
                _resnet_unit(m, f"res{stage}_{b}_{branch}", f"{name}_branch2{branch}")
            if m.has(f"{name}_branch1_weights"):
                _resnet_unit(m, f"res{stage}_{b}_short", f"{name}_branch1")


def map_fpn(m, levels, extra_levels=()):
    """Static FPN over res{l}_sum -> tfdet.necks.fpn."""
    top = max(levels)
    for level in levels:
        lateral = f"fpn_inner_res{level}_sum" + ("" if level == top else "_lateral")
        _conv_maybe_gn(m, f"fpn_lateral{level}", f"fpn_lateral{level}_gn", lateral)
        _conv_maybe_gn(m, f"fpn_output{level}", f"fpn_output{level}_gn",
                       f"fpn_res{level}_sum")
    for level in extra_levels:
        _conv(m, f"fpn_extra{level}", f"fpn_{level}_w", f"fpn_{level}_b")


def map_retinanet(m, model):
    c = model.config
    map_resnet(m, c["depth"], c["variant"])
    map_fpn(m, range(c["min_level"], 6), range(6, c["max_level"] + 1))
    low = c["min_level"]
    for i in range(model.head.num_convs):
        for tower, static in (("class", "cls"), ("box", "bbox")):
            name = f"retnet_{static}_conv_n{i}_fpn{low}"
            _conv(m, f"head/{tower}_tower/{tower}_conv{i}", f"{name}_w", f"{name}_b")
    _conv(m, "head/class_out", f"retnet_cls_pred_fpn{low}_w", f"retnet_cls_pred_fpn{low}_b")
    _conv(m, "head/box_out", f"retnet_bbox_pred_fpn{low}_w", f"retnet_bbox_pred_fpn{low}_b")


def _fc(m, layer, name, flatten=None):
    """Static fc `name`_w ([in, out], as Keras) / `name`_b -> tfdet Dense `layer`; flatten
    (channels, size): the input is a RoI feature map that Paddle flattens C, H, W and tfdet
    H, W, C, so the rows are reordered."""
    w = m.take(f"{name}_w")
    if w is not None and flatten is not None:
        channels, size = flatten
        if w.shape[0] == channels * size * size:
            w = w.reshape(channels, size, size, -1).transpose(1, 2, 0, 3).reshape(
                channels * size * size, -1)
    m.put(f"{layer}/kernel", w)
    m.put(f"{layer}/bias", m.take(f"{name}_b"))


def map_faster_rcnn(m, model):
    """Static FasterRCNN / CascadeRCNN (FPN with TwoFCHead, or C4 with res5 as the RoI head)
    -> tfdet; map_mask_rcnn adds the mask head."""
    c = model.config
    c4 = c["neck"] == "c4"
    map_resnet(m, c["depth"], c["variant"], (2, 3, 4) if c4 else (2, 3, 4, 5))
    suffix = "" if c4 else "_fpn2"
    if not c4:
        map_fpn(m, range(2, 6))
    _conv(m, "rpn_head/conv", f"conv_rpn{suffix}_w", f"conv_rpn{suffix}_b")
    _conv(m, "rpn_head/objectness", f"rpn_cls_logits{suffix}_w", f"rpn_cls_logits{suffix}_b")
    _conv(m, "rpn_head/deltas", f"rpn_bbox_pred{suffix}_w", f"rpn_bbox_pred{suffix}_b")
    if c4:
        map_resnet(m, c["depth"], c["variant"], (5,))
    for i, head in enumerate(model.roi_heads.box_heads):
        stage = "" if i == 0 else f"_{i + 1}"
        if not c4 and head.num_convs:
            # XConvNormHead (GN rows): ConvNorms bbox_head_conv0 .. 3, then an fc named after
            # the last of them (fc6bbox_head_conv3). The static cascade head overwrites its
            # stage suffix with those names, so its stages share the convs and fc6.
            for j in range(head.num_convs):
                name, layer = f"bbox_head_conv{j}", f"{head.name}/convs/conv{j + 1}"
                _conv(m, layer, f"{name}_weights")
                _norm(m, f"{layer}_norm", f"{name}_scale", f"{name}_offset", None, None)
            _fc(m, f"{head.name}/fcs/fc1", f"fc6bbox_head_conv{head.num_convs - 1}",
                (head.conv_dim, c["roi_size"]))
        elif not c4:
            _fc(m, f"{head.name}/fcs/fc1", f"fc6{stage}", (c["fpn_channels"], c["roi_size"]))
            _fc(m, f"{head.name}/fcs/fc2", f"fc7{stage}")
        _fc(m, f"{head.name}/classifier", f"cls_score{stage}")
        _fc(m, f"{head.name}/regressor", f"bbox_pred{stage}")


def map_mask_rcnn(m, model):
    """Static MaskRCNN / CascadeMaskRCNN: the box path, then MaskHead (FPN: four 3x3 convs
    mask_inter_feat_1..4; C4: none), conv5_mask and the 81-way mask_fcn_logits."""
    map_faster_rcnn(m, model)
    layers = "mask_head/mask_layers"
    for i in range(model.config["mask_num_convs"]):
        _conv_maybe_gn(m, f"{layers}/conv{i + 1}", f"{layers}/conv{i + 1}_norm",
                       f"mask_inter_feat_{i + 1}")
    _conv(m, f"{layers}/deconv", "conv5_mask_w", "conv5_mask_b")
    _conv(m, f"{layers}/mask_logits", "mask_fcn_logits_w", "mask_fcn_logits_b")


def _yolo_unit(m, layer, name):
    """A static DarkNet / YOLOv3 `_conv_bn` `name` (`name`.conv.weights, `name`.bn.*)."""
    _conv(m, f"{layer}_conv", f"{name}.conv.weights")
    _norm(m, f"{layer}_norm", f"{name}.bn.scale", f"{name}.bn.offset", f"{name}.bn.mean",
          f"{name}.bn.var")


_MOBILENET_BLOCKS = (["conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2"]
                     + [f"conv5_{i}" for i in range(1, 7)] + ["conv6"])


def map_mobilenet_v1(m):
    """Static MobileNet (conv1, then conv2_1 .. conv6, each _dw and _sep) -> tfdet."""
    def unit(layer, name, depthwise=False):
        _conv(m, f"{layer}_conv", f"{name}_weights", depthwise=depthwise)
        _norm(m, f"{layer}_norm", f"{name}_bn_scale", f"{name}_bn_offset", f"{name}_bn_mean",
              f"{name}_bn_variance")
    unit("stem", "conv1")
    for i, name in enumerate(_MOBILENET_BLOCKS, start=1):
        unit(f"block{i}_dw", f"{name}_dw", depthwise=True)
        unit(f"block{i}_pw", f"{name}_sep")


def map_darknet53(m):
    """Static DarkNet-53 -> tfdet darknet53 (the downsampling conv before stage s + 1 is
    `stage.{s}.downsample`; the first is `yolo_input.downsample`)."""
    from tfdet.backbones.darknet import _STAGES
    _yolo_unit(m, "stem", "yolo_input")
    for stage, blocks in enumerate(_STAGES):
        down = "yolo_input.downsample" if stage == 0 else f"stage.{stage - 1}.downsample"
        _yolo_unit(m, f"stage{stage + 1}_down", down)
        for b in range(blocks):
            _yolo_unit(m, f"stage{stage + 1}_block{b + 1}_a", f"stage.{stage}.{b}.0")
            _yolo_unit(m, f"stage{stage + 1}_block{b + 1}_b", f"stage.{stage}.{b}.1")


def _yolov3_backbone(m, c):
    _map_yolov3_backbone(m, c, map_darknet53, map_mobilenet_v1, map_resnet)


def map_yolov3(m, model):
    """Static YOLOv3 (DarkNet-53, MobileNet or ResNet backbone; YOLOv3Head) -> tfdet."""
    _yolov3_backbone(m, model.config)
    for i in range(3):
        p = f"yolo_block.{i}"
        for j in range(2):
            _yolo_unit(m, f"yolo_block{i}_{j}_a", f"{p}.{j}.0")
            _yolo_unit(m, f"yolo_block{i}_{j}_b", f"{p}.{j}.1")
        _yolo_unit(m, f"yolo_block{i}_route", f"{p}.2")
        _yolo_unit(m, f"yolo_block{i}_tip", f"{p}.tip")
        if i < 2:
            _yolo_unit(m, f"yolo_transition{i}", f"yolo_transition.{i}")
        _conv(m, f"output{i}", f"yolo_output.{i}.conv.weights", f"yolo_output.{i}.conv.bias")


def _generated(state, kind):
    """The static program's unnamed layers of `kind` (conv2d, batch_norm): the prefixes
    `kind`_N of their `kind`_N.w_0 parameters, in creation order (N)."""
    import re
    found = sorted((int(match.group(1)), key) for key in state
                   if (match := re.fullmatch(kind + r"_(\d+)\.w_0", key)))
    return [key.removesuffix(".w_0") for _, key in found]


def _generated_convs(state):
    return _generated(state, "conv2d")


def map_multibox_head(m, model):
    """fluid.layers.multi_box_head (and the face heads built like it) names nothing: per
    feature map it creates a loc conv, then a conf conv, so they are the program's last 2L
    unnamed convs in creation order. The conf conv's classes have the background first, as
    tfdet's."""
    layers = [f"head/{kind}{i}" for i in range(len(model.head.priors_per_cell))
              for kind in ("box", "class")]
    names = _generated_convs(m.state)
    if len(names) < len(layers):
        raise ConversionError(f"expected {len(layers)} generated-name head convs "
                              f"(conv2d_N.w_0), found {len(names)}")
    for layer, name in zip(layers, names[len(names) - len(layers):]):
        _conv(m, layer, f"{name}.w_0", f"{name}.b_0")


def _plain_conv(m, layer, name):
    """A static VGG `_conv_layer`: `name`_weights, `name`_biases."""
    _conv(m, layer, f"{name}_weights", f"{name}_biases")


def map_vgg16(m, fc_optional=False):
    """Static VGG16 conv1_1 .. conv5_3, fc6, fc7 (fc_optional: only when present, as in
    ImageNet files)."""
    from tfdet.backbones.vgg import _BLOCKS as VGG_BLOCKS
    for block, (_, convs) in enumerate(VGG_BLOCKS, start=1):
        for i in range(1, convs + 1):
            _plain_conv(m, f"conv{block}_{i}", f"conv{block}_{i}")
    for fc in ("fc6", "fc7"):
        if not fc_optional or m.has(f"{fc}_weights"):
            _plain_conv(m, fc, fc)


def map_ssd(m, model):
    """Static SSD: VGG16 (conv{b}_{i}, fc6, fc7, conv4_3_norm_scale, extras conv6_1 ..
    conv9_2) or MobileNet (its blocks, extras conv7_{i}_extra1 / _extra2 with norms), then
    the multi-box head."""
    c = model.config
    if c["backbone"] == "vgg16":
        map_vgg16(m)
        (var,) = m.layer_vars("conv4_3_norm")
        m.put(f"conv4_3_norm/{var}", m.take("conv4_3_norm_scale"))
        for i in range(1, len(c["extras"]) + 1):
            for j in (1, 2):
                _plain_conv(m, f"extra{i}_{j}_conv", f"conv{5 + i}_{j}")
    elif c["backbone"] == "mobilenet_v1":
        map_mobilenet_v1(m)
        for i in range(1, len(c["extras"]) + 1):
            for j in (1, 2):
                name = f"conv7_{i}_extra{j}"
                _conv(m, f"extra{i}_{j}_conv", f"{name}_weights")
                _norm(m, f"extra{i}_{j}_norm", f"{name}_bn_scale", f"{name}_bn_offset",
                      f"{name}_bn_mean", f"{name}_bn_variance")
    elif c["backbone"] == "blazenet" and not c.get("neck"):
        map_blazenet(m, c)
    elif c["backbone"] == "faceboxnet":
        map_faceboxnet(m, c)
    else:
        raise ConversionError(f"{model.name}: no static-graph mapping for an SSD on "
                              f"{c['backbone']}" + (f" with the {c['neck']} neck (ppdet 2.x "
                                                    "only)" if c.get("neck") else ""))
    map_multibox_head(m, model)


class _GeneratedNorms:
    """The static face backbones' `fluid.layers.batch_norm(input=conv)` name nothing: their
    parameters are batch_norm_N.w_0 (scale), .b_0 (offset), .w_1 (mean), .w_2 (variance),
    N counting in creation order, so the k-th conv-norm unit takes the k-th N."""

    def __init__(self, m):
        self.m = m
        self.names = _generated(m.state, "batch_norm")
        self.used = 0

    def skip(self, conv):
        """Consumes static conv `conv` and the next norm (a unit tfdet does not build)."""
        self.m.take(f"{conv}_weights")
        if self.used < len(self.names):
            for part in ("w_0", "b_0", "w_1", "w_2"):
                self.m.take(f"{self.names[self.used]}.{part}")
        self.used += 1

    def unit(self, layer, conv, depthwise=False):
        """tfdet `layer`_conv / _norm <- static conv `conv`_weights and the next norm."""
        _conv(self.m, f"{layer}_conv", f"{conv}_weights", depthwise=depthwise)
        if self.used < len(self.names):
            bn = self.names[self.used]
        else:  # reported as missing, after the last one the file has
            bn = f"batch_norm (unit {self.used + 1}; the file has {len(self.names)})"
        self.used += 1
        _norm(self.m, f"{layer}_norm", f"{bn}.w_0", f"{bn}.b_0", f"{bn}.w_1", f"{bn}.w_2")


def map_blazenet(m, c):
    """Static BlazeNet (`backbones/blazenet.py`) in its creation order: conv1; per BlazeBlock
    `blaze_{k}` / `double_blaze_{k}`: 1_dw (or 1_dw_1, 1_dw_2 with 3x3 kernels), 1_sep, then
    for double blocks 2_dw (a dense 5x5 conv in the static code) or 2_dw_1 / 2_dw_2, 2_sep,
    then the strided blocks' `shortcut<name>`. Lite: conv1, then conv2 .. conv17 (`_dw`,
    `_sep`, `shortcut<name>` when the width changes)."""
    from tfdet.backbones.blazenet import BLAZE_FILTERS, DOUBLE_BLAZE_FILTERS, LITE_BLOCKS
    settings = dict(c.get("backbone_settings") or {})
    norms = _GeneratedNorms(m)
    norms.unit("stem", "conv1")
    if settings.get("lite"):
        channels = 24
        for i, (out, _) in enumerate(LITE_BLOCKS, start=2):
            norms.unit(f"lite{i}_dw", f"conv{i}_dw", depthwise=True)
            norms.unit(f"lite{i}_pw", f"conv{i}_sep")
            if channels != out:
                norms.unit(f"lite{i}_shortcut", f"shortcutconv{i}")
            channels = out
        return
    use_5x5 = settings.get("use_5x5", True)
    blocks = [(f"blaze{i}", f"blaze_{i}", f, False) for i, f in
              enumerate(settings.get("blaze_filters", BLAZE_FILTERS))]
    blocks += [(f"double_blaze{i}", f"double_blaze_{i}", f, True) for i, f in
               enumerate(settings.get("double_blaze_filters", DOUBLE_BLAZE_FILTERS))]
    for ours, theirs, filters, double in blocks:
        parts = ((1, 2) if double else (1,))
        for part in parts:
            if use_5x5:  # the first is depthwise, the static second a dense conv
                norms.unit(f"{ours}_dw{part}", f"{theirs}{part}_dw", depthwise=part == 1)
            else:
                for half in (1, 2):
                    norms.unit(f"{ours}_dw{part}_{half}", f"{theirs}{part}_dw_{half}",
                               depthwise=True)
            norms.unit(f"{ours}_pw{part}", f"{theirs}{part}_sep")
        if len(filters) == (4 if double else 3) and filters[-1] > 1:
            norms.unit(f"{ours}_shortcut", f"shortcut{theirs}")
    return norms


def map_faceboxnet(m, c):
    """Static FaceBoxNet (`backbones/faceboxnet.py`) in its creation order: conv_1, conv_2
    (CReLU; lite: conv_1_1, conv_1_2, then conv_2_1, conv_2_2), inceptionA_{i}_conv1, conv2,
    conv3_1, conv3_2, conv4_1, conv4_2, conv4_3, then conv_3_1, conv_3_2 (, conv_4_1,
    conv_4_2); tfdet drops the first underscore (conv3_1, inception0_conv1). The original
    edition's conv_2 is built but pools the first conv's output instead (tfdet.backbones.
    faceboxnet): its tensors are read and left out."""
    lite = dict(c.get("backbone_settings") or {}).get("lite")
    norms = _GeneratedNorms(m)
    head = ["1_1", "1_2", "2_1", "2_2"] if lite else ["1"]
    for name in head:
        norms.unit(f"conv{name}", f"conv_{name}")
    if not lite:  # conv_2 (and its norm) never reach the static output: read, not used
        norms.skip("conv_2")
    for i in range(3):
        for part in ("conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv4_3"):
            norms.unit(f"inception{i}_{part}", f"inceptionA_{i}_{part}")
    for stage in (3,) if lite else (3, 4):
        for part in (1, 2):
            norms.unit(f"conv{stage}_{part}", f"conv_{stage}_{part}")
    return norms


FAMILIES = {"RetinaNet": map_retinanet, "SSD": map_ssd, "FasterRCNN": map_faster_rcnn,
            "CascadeRCNN": map_faster_rcnn, "MaskRCNN": map_mask_rcnn,
            "CascadeMaskRCNN": map_mask_rcnn, "YOLOv3": map_yolov3}


def _family(model):
    kind = type(model).__name__
    if kind not in FAMILIES:
        raise ConversionError(f"no static-graph mapping for {kind} ({model.name}); static "
                              f"conversion covers {', '.join(sorted(FAMILIES))}")
    return FAMILIES[kind]


def convert_static_state(state, model, what="weights"):
    """{tfdet variable path: array} for a tfdet zoo-row `model` from static-graph weights
    {name: array}, or ConversionError naming every missing, unused or mis-shaped tensor."""
    m = _Mapping(state, model)
    _family(model)(m, model)
    return m.finish(what)


def from_static(row, state, num_classes=None, what="weights", **overrides):
    """The tfdet zoo row `row` with static-graph weights {name: array}. num_classes defaults
    to what the weights hold (foreground classes)."""
    from tfdet import models
    if num_classes is None:
        num_classes = _infer_classes(state)
    model = models.get(row, num_classes=num_classes, **static_overrides(row), **overrides)
    assign(model, convert_static_state(state, model, what))
    return model


def static_overrides(row):
    """Settings that give a row the static zoo's architecture where the row follows ppdet 2.x:
    the blazeface row's double blocks get the static code's dense 5x5 second conv."""
    from tfdet import models
    _, settings = models.architecture(row)
    backbone = dict(settings.get("backbone_settings") or ())
    if settings.get("backbone") == "blazenet" and not settings.get("neck") \
            and not backbone.get("lite") \
            and backbone.get("use_5x5", True) and not backbone.get("dense_second_dw"):
        backbone["dense_second_dw"] = True
        return {"backbone_settings": tuple(backbone.items())}
    return {}


def _infer_classes(state):
    """Foreground classes of static weights (None when the head is not recognised)."""
    if "cls_score_w" in state:
        return state["cls_score_w"].shape[1] - 1
    if "retnet_cls_pred_fpn3_w" in state:
        anchors = state["retnet_bbox_pred_fpn3_w"].shape[0] // 4
        return state["retnet_cls_pred_fpn3_w"].shape[0] // anchors
    if "yolo_output.0.conv.weights" in state:
        return state["yolo_output.0.conv.weights"].shape[0] // 3 - 5
    generated = _generated_convs(state)
    if len(generated) >= 2:  # a multi-box head: the last loc conv (4 per prior), its conf conv
        loc, conf = (state[f"{name}.w_0"].shape[0] for name in generated[-2:])
        if loc % 4 == 0 and conf % (loc // 4) == 0:
            return conf // (loc // 4) - 1
    return None


def read_static_weights(path):
    """{name: array} from static-graph weights: the zoo's `.tar` or its unpacked folder (one
    file per variable), or a `fluid.save` checkpoint (`.pdparams`)."""
    from tfdet.convert.pdparams import read_pdparams, read_static_params
    if str(path).endswith(".pdparams"):
        return read_pdparams(path)
    return read_static_params(path)


def load_static_backbone(model, path, state=None):
    """Initialises `model`'s backbone from static-graph ImageNet weights (the static zoo's
    `pretrain_weights`, e.g. ResNet50_cos_pretrained.tar: ResNet / ResNet-vd / ResNeXt,
    DarkNet-53, MobileNetV1, VGG16), folding BN statistics into AffineChannel rows. Tensors the
    backbone does not use (the classifier) are returned as "unused". state: the file's
    tensors when already read."""
    if state is None:
        state = read_static_weights(path)
    if _infer_classes(state) is not None:
        raise ConversionError(f"{path}: holds a whole static detector, not a backbone; convert "
                              "it with scripts/convert_weights.py --static_row ROW")
    m = _Mapping(state, model)
    kind = type(model).__name__
    c = model.config
    if kind in ("RetinaNet", "FasterRCNN", "MaskRCNN", "CascadeRCNN", "CascadeMaskRCNN"):
        map_resnet(m, c["depth"], c["variant"])
    elif kind == "YOLOv3":
        _yolov3_backbone(m, c)
    elif kind == "SSD" and c["backbone"] == "vgg16":
        map_vgg16(m, fc_optional=True)
    elif kind == "SSD" and c["backbone"] == "mobilenet_v1":
        map_mobilenet_v1(m)
    else:
        raise ConversionError(f"no static-graph backbone mapping for {kind}")
    values = m.finish(f"{path} (backbone of {model.name})", partial=True)
    variables = {w.path: w for w in model.weights}
    for name, value in values.items():
        variables[name].assign(value.astype(variables[name].dtype))
    return {"assigned": len(values), "unused": m.unused}


def is_static_state(state):
    """Whether {name: array} carries the static code's names (a stem the static backbones
    name conv1 / res_conv1 / conv1_1 / yolo_input) rather than ppdet 2.x's."""
    return any(k in state for k in ("conv1_weights", "res_conv1_weights", "conv1_1_weights",
                                    "yolo_input.conv.weights"))


def convert_static_checkpoint(row, weights, output, num_classes=None, class_names=None,
                              category_ids=None, configs_dir=None):
    """Converts static-graph zoo weights (`.tar`, its folder, or a `fluid.save` `.pdparams`)
    for tfdet zoo row `row` into a run folder, as convert_paddle_checkpoint does for ppdet
    2.x weights: checked whole before anything is written. Returns the checkpoint prefix."""
    import os

    from tfdet import models
    from tfdet.config_files import CONFIGS
    from tfdet.convert.paddle import (_check_classes, _class_map, write_run_folder,
                                      zoo_config_text)
    output = os.path.abspath(output)
    if os.path.exists(output):
        raise FileExistsError(f"{output} exists; give a new folder")
    if row not in models.list_models():
        raise ConversionError(f"unknown zoo row {row!r} (tfdet.models.list_models())")
    state = read_static_weights(weights)
    num_classes = _check_classes(weights, _infer_classes(state), num_classes)
    if num_classes is None:
        raise ConversionError(f"{weights}: no static detector head found (cls_score_w, "
                              "retnet_cls_pred_fpn3_w or yolo_output.0.conv.weights)")
    class_names, category_ids = _class_map(weights, num_classes, class_names, category_ids)
    model = from_static(row, state, num_classes, what=str(weights))
    header = (f"# Converted from PaddleDetection static-graph zoo weights: zoo row {row} "
              "(tfdet.convert.static).\n")
    bindings = [f"ModelConfig.name = '{row}'", f"ModelConfig.num_classes = {num_classes}"]
    if static_overrides(row):
        bindings.append(f"ModelConfig.overrides = {static_overrides(row)!r}")
    config = zoo_config_text(row, bindings, header, configs_dir or CONFIGS)
    return write_run_folder(model, output, config, class_names, category_ids,
                            {"static_row": row, "weights": os.path.abspath(weights)})
