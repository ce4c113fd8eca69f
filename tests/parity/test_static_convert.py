"""Static-graph zoo weights (the names the static code gives its parameters) onto tfdet rows.

`static_state` writes, for a row, every parameter the static program creates, under the static
code's own name and Paddle shape, transcribed here from PaddleDetection release/2.3
`static/ppdet/modeling` (resnet.py + name_adapter.py, fpn.py, rpn_head.py, bbox_head.py,
cascade_head.py, mask_head.py, retina_head.py, darknet.py, yolo_head.py, mobilenet.py), with
random values. Conversion must use every tensor and fill every tfdet variable with a tensor of
its shape; values are then checked against the layouts by hand (conv [out, in, kh, kw] ->
[kh, kw, in, out], fc6's C, H, W rows, affine_channel / BN statistics).
"""
import numpy as np
import pytest

from tfdet.convert import ConversionError, write_pdparams
from tfdet.convert.static import (convert_static_state, from_static, load_static_backbone,
                                  read_static_weights)

RESNET = {34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3))}


class Static:
    """Collects {static name: random array of the Paddle shape}."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.state = {}

    def add(self, name, *shape, positive=False):
        value = self.rng.standard_normal(shape).astype(np.float32)
        self.state[name] = np.abs(value) + 0.5 if positive else value

    def conv(self, name, cout, cin, k, bias=None, w="_weights"):
        self.add(name + w, cout, cin, k, k)
        if bias:
            self.add(name + bias, cout)

    def resnet_unit(self, name, cout, cin, k, stats):
        # resnet.py _conv_norm: <name>_weights; NameAdapter.fix_conv_norm_name for the norm.
        self.conv(name, cout, cin, k)
        bn = "bn_" + name if name == "conv1" else "bn" + name[3:]
        self.add(bn + "_scale", cout)
        self.add(bn + "_offset", cout)
        if stats:  # batch_norm rows (and ImageNet weights); affine_channel has scale, offset
            self.add(bn + "_mean", cout)
            self.add(bn + "_variance", cout, positive=True)

    def resnet(self, depth, variant="b", stages=(2, 3, 4, 5), stats=False, dcn_stages=()):
        kind, counts = RESNET[depth]
        if stages[0] == 2:
            if variant == "d":
                self.resnet_unit("conv1_1", 32, 3, 3, stats)
                self.resnet_unit("conv1_2", 32, 32, 3, stats)
                self.resnet_unit("conv1_3", 64, 32, 3, stats)
            else:
                self.resnet_unit("conv1", 64, 3, 7, stats)
        cin = {2: 64, 3: 256, 4: 512, 5: 1024}[stages[0]] if kind != "basic" else \
            {2: 64, 3: 64, 4: 128, 5: 256}[stages[0]]
        for stage in stages:
            ch = 64 * 2 ** (stage - 2)
            count = counts[stage - 2]
            for i in range(count):
                # NameAdapter.fix_layer_warp_name
                if count > 10 and stage == 4:
                    name = f"res{stage}a" if i == 0 else f"res{stage}b{i}"
                else:
                    name = f"res{stage}{chr(ord('a') + i)}"
                if kind == "basic":
                    self.resnet_unit(name + "_branch2a", ch, cin, 3, stats)
                    self.resnet_unit(name + "_branch2b", ch, ch, 3, stats)
                    cout = ch
                else:
                    self.resnet_unit(name + "_branch2a", ch, cin, 1, stats)
                    self.resnet_unit(name + "_branch2b", ch, ch, 3, stats)
                    if stage in dcn_stages:  # _conv_offset: 2 * 9 offsets and 9 masks
                        self.add(name + "_branch2b_conv_offset.w_0", 27, ch, 3, 3)
                        self.add(name + "_branch2b_conv_offset.b_0", 27)
                    self.resnet_unit(name + "_branch2c", 4 * ch, ch, 1, stats)
                    cout = 4 * ch
                # _shortcut: a projection when channels or stride change, or res2a of R18/34.
                if cin != cout or (i == 0 and stage > 2) or (depth < 50 and i == 0):
                    self.resnet_unit(name + "_branch1", cout, cin, 1, stats)
                cin = cout

    def conv_gn(self, name, cout, cin, k):
        # ops.py ConvNorm with norm_type gn: <name>_weights (no bias), <name>_scale / _offset
        self.conv(name, cout, cin, k)
        self.add(name + "_scale", cout)
        self.add(name + "_offset", cout)

    def fpn(self, levels, extras=(), channels=256, gn=False):
        ins = {2: 256, 3: 512, 4: 1024, 5: 2048}
        top = max(levels)
        for level in levels:
            lateral = f"fpn_inner_res{level}_sum" + ("" if level == top else "_lateral")
            if gn:
                self.conv_gn(lateral, channels, ins[level], 1)
                self.conv_gn(f"fpn_res{level}_sum", channels, channels, 3)
                continue
            self.conv(lateral, channels, ins[level], 1, "_b", w="_w")
            self.conv(f"fpn_res{level}_sum", channels, channels, 3, "_b", w="_w")
        for level in extras:  # fpn_6 from C5 (use_c5), fpn_7 from fpn_6
            self.conv(f"fpn_{level}", channels, 2048 if level == 6 else channels, 3, "_b",
                      w="_w")

    def fc(self, name, fin, fout):
        self.add(name + "_w", fin, fout)
        self.add(name + "_b", fout)

    def dark_unit(self, name, cout, cin, k):
        self.conv(name, cout, cin, k, w=".conv.weights")
        for part in ("scale", "offset", "mean"):
            self.add(f"{name}.bn.{part}", cout)
        self.add(f"{name}.bn.var", cout, positive=True)

    def darknet53(self):
        self.dark_unit("yolo_input", 32, 3, 3)
        self.dark_unit("yolo_input.downsample", 64, 32, 3)
        for i, count in enumerate((1, 2, 8, 8, 4)):
            ch = 32 * 2 ** i
            for j in range(count):
                self.dark_unit(f"stage.{i}.{j}.0", ch, 2 * ch, 1)
                self.dark_unit(f"stage.{i}.{j}.1", 2 * ch, ch, 3)
            if i < 4:
                self.dark_unit(f"stage.{i}.downsample", 4 * ch, 2 * ch, 3)

    def mobilenet_v1(self):
        def unit(name, cout, cin, k, groups=1):
            self.add(name + "_weights", cout, cin // groups, k, k)
            for part in ("scale", "offset", "mean"):
                self.add(f"{name}_bn_{part}", cout)
            self.add(f"{name}_bn_variance", cout, positive=True)
        unit("conv1", 32, 3, 3)
        blocks = [("conv2_1", 32, 64), ("conv2_2", 64, 128), ("conv3_1", 128, 128),
                  ("conv3_2", 128, 256), ("conv4_1", 256, 256), ("conv4_2", 256, 512)]
        blocks += [(f"conv5_{i}", 512, 512) for i in range(1, 6)]
        blocks += [("conv5_6", 512, 1024), ("conv6", 1024, 1024)]
        for name, cin, cout in blocks:
            unit(name + "_dw", cin, cin, 3, groups=cin)
            unit(name + "_sep", cout, cin, 1)

    def vgg16_ssd(self):
        cin = 3
        for block, (ch, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)),
                                            start=1):
            for i in range(1, convs + 1):
                self.conv(f"conv{block}_{i}", ch, cin, 3, "_biases")
                cin = ch
        self.conv("fc6", 1024, 512, 3, "_biases")
        self.conv("fc7", 1024, 1024, 1, "_biases")
        self.add("conv4_3_norm_scale", 512)
        cin = 1024
        for k, (c1, c2) in enumerate(((256, 512), (128, 256), (128, 256), (128, 256))):
            self.conv(f"conv{6 + k}_1", c1, cin, 1, "_biases")
            self.conv(f"conv{6 + k}_2", c2, c1, 3, "_biases")
            cin = c2

    def multibox_head(self, channels, priors, kernel, classes, first=7):
        # fluid.layers.multi_box_head: per map a loc conv, then a conf conv, no names; the
        # counter starts wherever the program's unnamed layers left it.
        n = first
        for cin, p in zip(channels, priors):
            for cout in (4 * p, (classes + 1) * p):
                self.add(f"conv2d_{n}.w_0", cout, cin, kernel, kernel)
                self.add(f"conv2d_{n}.b_0", cout)
                n += 1

    def face_unit(self, name, cout, cin, k, groups=1):
        # blazenet.py / faceboxnet.py _conv_norm: <name>_weights, then an unnamed batch_norm
        self.add(name + "_weights", cout, cin // groups, k, k)
        n = self.norms = getattr(self, "norms", 0)
        for part in ("w_0", "b_0", "w_1"):
            self.add(f"batch_norm_{n}.{part}", cout)
        self.add(f"batch_norm_{n}.w_2", cout, positive=True)
        self.norms += 1

    def blazenet(self, blaze, double, use_5x5=True):
        self.face_unit("conv1", blaze[0][0], 3, 3)
        blocks = [(f"blaze_{k}", v[0], v[1], None, (v[2:] or [1])[0])
                  for k, v in enumerate(blaze)]
        blocks += [(f"double_blaze_{k}", v[0], v[1], v[2], (v[3:] or [1])[0])
                   for k, v in enumerate(double)]
        for name, cin, out, dbl, stride in blocks:  # BlazeBlock, in its creation order
            if use_5x5:
                self.face_unit(name + "1_dw", cin, cin, 5, groups=cin)
            else:
                self.face_unit(name + "1_dw_1", cin, cin, 3, groups=cin)
                self.face_unit(name + "1_dw_2", cin, cin, 3, groups=cin)
            self.face_unit(name + "1_sep", out, cin, 1)
            if dbl:
                if use_5x5:
                    self.face_unit(name + "2_dw", out, out, 5)  # no num_groups: dense
                else:
                    self.face_unit(name + "2_dw_1", out, out, 3, groups=out)
                    self.face_unit(name + "2_dw_2", out, out, 3, groups=out)
                self.face_unit(name + "2_sep", dbl, out, 1)
            if stride == 2:
                self.face_unit("shortcut" + name, dbl or out, cin, 1)

    def blazenet_lite(self):
        self.face_unit("conv1", 24, 3, 5)
        plan = [(2, 24, 24), (3, 24, 28), (4, 28, 32), (5, 32, 36), (6, 36, 42), (7, 42, 48)]
        plan += [(8 + i, 48 + 8 * i, 56 + 8 * i) for i in range(5)]
        plan += [(13, 88, 96)] + [(14 + i, 96, 96) for i in range(4)]
        for k, cin, out in plan:  # Blaze_lite
            self.face_unit(f"conv{k}_dw", cin, cin, 3, groups=cin)
            self.face_unit(f"conv{k}_sep", out, cin, 1)
            if cin != out:
                self.face_unit(f"shortcutconv{k}", out, cin, 1)

    def faceboxnet(self, lite):
        if lite:
            self.face_unit("conv_1_1", 8, 3, 3)
            self.face_unit("conv_1_2", 24, 16, 3)
            self.face_unit("conv_2_1", 48, 48, 3)
            self.face_unit("conv_2_2", 64, 48, 1)
            cin = 64
        else:
            self.face_unit("conv_1", 24, 3, 7)
            self.face_unit("conv_2", 64, 48, 5)  # built, never on the path to the output
            cin = 48
        for i in range(3):
            p = f"inceptionA_{i}_"
            self.face_unit(p + "conv1", 32, cin, 1)
            self.face_unit(p + "conv2", 32, cin, 1)
            self.face_unit(p + "conv3_1", 24, cin, 1)
            self.face_unit(p + "conv3_2", 32, 24, 3)
            self.face_unit(p + "conv4_1", 24, cin, 1)
            self.face_unit(p + "conv4_2", 32, 24, 3)
            self.face_unit(p + "conv4_3", 32, 32, 3)
            cin = 128
        for stage in (3,) if lite else (3, 4):
            self.face_unit(f"conv_{stage}_1", 128, cin, 1)
            self.face_unit(f"conv_{stage}_2", 256, 128, 3)
            cin = 256

    def yolo_head(self, c3, c4, c5, classes=80):
        ins = (c5, 256 + c4, 128 + c3)
        for i in range(3):
            ch = 512 // 2 ** i
            cin = ins[i]
            for j in range(2):
                self.dark_unit(f"yolo_block.{i}.{j}.0", ch, cin, 1)
                self.dark_unit(f"yolo_block.{i}.{j}.1", 2 * ch, ch, 3)
                cin = 2 * ch
            self.dark_unit(f"yolo_block.{i}.2", ch, 2 * ch, 1)
            self.dark_unit(f"yolo_block.{i}.tip", 2 * ch, ch, 3)
            if i < 2:
                self.dark_unit(f"yolo_transition.{i}", 256 // 2 ** i, ch, 1)
            self.conv(f"yolo_output.{i}", 3 * (5 + classes), 2 * ch, 1, ".conv.bias",
                      w=".conv.weights")


BLAZE = [[24, 24], [24, 24], [24, 48, 2], [48, 48], [48, 48]]
DOUBLE = [[48, 24, 96, 2], [96, 24, 96], [96, 24, 96], [96, 24, 96, 2], [96, 24, 96],
          [96, 24, 96]]
NAS = [[12, 12], [12, 12, 2], [12, 12]]
FACE = {  # builder, head input channels, priors per cell (configs/face_detection)
    "blazeface": (lambda s: s.blazenet(BLAZE, DOUBLE), (96, 96), (2, 6)),
    "blazeface_nas": (lambda s: s.blazenet(
        NAS, [[12, 16, 24, 2], [24, 12, 24], [24, 16, 72, 2], [72, 12, 72]]), (24, 72), (2, 6)),
    "blazeface_nas_v2": (lambda s: s.blazenet(
        NAS, [[12, 16, 32, 2], [32, 32, 32], [32, 16, 72, 2], [72, 24, 72]]), (32, 72), (2, 6)),
    "blazeface_lite": (lambda s: s.blazenet_lite(), (88, 96), (2, 6)),
    "faceboxes": (lambda s: s.faceboxnet(False), (128, 256, 256), (21, 1, 1)),
    "faceboxes_lite": (lambda s: s.faceboxnet(True), (128, 256), (6, 2)),
}


def static_state(row):
    s = Static()
    if row == "retinanet_r50_fpn_1x":
        s.resnet(50)
        s.fpn((3, 4, 5), (6, 7))
        for i in range(4):
            s.conv(f"retnet_cls_conv_n{i}_fpn3", 256, 256, 3, "_b", w="_w")
            s.conv(f"retnet_bbox_conv_n{i}_fpn3", 256, 256, 3, "_b", w="_w")
        s.conv("retnet_cls_pred_fpn3", 9 * 80, 256, 3, "_b", w="_w")
        s.conv("retnet_bbox_pred_fpn3", 9 * 4, 256, 3, "_b", w="_w")
    elif row in ("faster_rcnn_r50_fpn_1x", "mask_rcnn_r50_fpn_1x", "faster_rcnn_r50_vd_fpn_2x",
                 "faster_rcnn_r101_fpn_1x", "cascade_rcnn_r50_fpn_1x",
                 "cascade_mask_rcnn_r50_fpn_1x", "faster_rcnn_dcn_r50_fpn_1x",
                 "faster_rcnn_r50_fpn_gn_2x", "mask_rcnn_r50_fpn_gn_2x",
                 "cascade_mask_rcnn_r50_fpn_gn_2x"):
        depth = 101 if "r101" in row else 50
        gn = "_gn" in row
        s.resnet(depth, "d" if "_vd" in row else "b",
                 dcn_stages=(3, 4, 5) if "dcn" in row else ())
        s.fpn((2, 3, 4, 5), gn=gn)
        s.conv("conv_rpn_fpn2", 256, 256, 3, "_b", w="_w")
        s.conv("rpn_cls_logits_fpn2", 3, 256, 1, "_b", w="_w")
        s.conv("rpn_bbox_pred_fpn2", 12, 256, 1, "_b", w="_w")
        cascade = row.startswith("cascade")
        if gn:  # XConvNormHead; the cascade's stages share these names (cascade_head.py)
            for i in range(4):
                s.conv_gn(f"bbox_head_conv{i}", 256, 256, 3)
            s.fc("fc6bbox_head_conv3", 256 * 7 * 7, 1024)
        for stage in ("", "_2", "_3") if cascade else ("",):
            if not gn:
                s.fc(f"fc6{stage}", 256 * 7 * 7, 1024)
                s.fc(f"fc7{stage}", 1024, 1024)
            s.fc(f"cls_score{stage}", 1024, 81)
            s.fc(f"bbox_pred{stage}", 1024, 8 if cascade else 81 * 4)
        if "mask" in row:
            for i in range(1, 5):
                if gn:
                    s.conv_gn(f"mask_inter_feat_{i}", 256, 256, 3)
                else:
                    s.conv(f"mask_inter_feat_{i}", 256, 256, 3, "_b", w="_w")
            s.add("conv5_mask_w", 256, 256, 2, 2)  # conv2d_transpose: [in, out, kh, kw]
            s.add("conv5_mask_b", 256)
            s.conv("mask_fcn_logits", 81, 256, 1, "_b", w="_w")
    elif row in ("faster_rcnn_r50_1x", "mask_rcnn_r50_1x"):
        s.resnet(50, stages=(2, 3, 4))
        s.conv("conv_rpn", 1024, 1024, 3, "_b", w="_w")
        s.conv("rpn_cls_logits", 15, 1024, 1, "_b", w="_w")
        s.conv("rpn_bbox_pred", 60, 1024, 1, "_b", w="_w")
        s.resnet(50, stages=(5,))  # ResNetC5: the RoI head
        s.fc("cls_score", 2048, 81)
        s.fc("bbox_pred", 2048, 81 * 4)
        if "mask" in row:
            s.add("conv5_mask_w", 2048, 256, 2, 2)
            s.add("conv5_mask_b", 256)
            s.conv("mask_fcn_logits", 81, 256, 1, "_b", w="_w")
    elif row == "yolov3_darknet53":
        s.darknet53()
        s.yolo_head(256, 512, 1024)
    elif row == "yolov3_mobilenet_v1":
        s.mobilenet_v1()
        s.yolo_head(256, 512, 1024)
    elif row == "ssd_vgg16_300_voc":
        s.vgg16_ssd()
        s.multibox_head((512, 1024, 512, 256, 256, 256), (4, 6, 6, 6, 4, 4), 3, 20)
    elif row == "ssd_mobilenet_v1_voc":
        s.mobilenet_v1()
        cin = 1024
        for i, (c1, c2) in enumerate(((256, 512), (128, 256), (128, 256), (64, 128)), start=1):
            for j, (cout, k) in enumerate(((c1, 1), (c2, 3)), start=1):
                name = f"conv7_{i}_extra{j}"  # mobilenet.py _extra_block, _conv_norm
                s.add(name + "_weights", cout, cin, k, k)
                for part in ("scale", "offset", "mean"):
                    s.add(f"{name}_bn_{part}", cout)
                s.add(f"{name}_bn_variance", cout, positive=True)
                cin = cout
        s.multibox_head((512, 1024, 512, 256, 256, 128), (3, 6, 6, 6, 6, 6), 1, 20, first=0)
    elif row in FACE:
        builder, channels, priors = FACE[row]
        builder(s)
        s.multibox_head(channels, priors, 3, 1, first=0)
    elif row == "yolov3_r34":
        s.resnet(34, stats=True)
        s.yolo_head(128, 256, 512)
    else:
        raise KeyError(row)
    return s.state


def _kernel(w):
    return np.transpose(w, (2, 3, 1, 0))


ROWS = ["retinanet_r50_fpn_1x", "faster_rcnn_r50_fpn_1x", "faster_rcnn_r50_vd_fpn_2x",
        "faster_rcnn_r101_fpn_1x", "faster_rcnn_r50_1x", "mask_rcnn_r50_fpn_1x",
        "mask_rcnn_r50_1x", "cascade_rcnn_r50_fpn_1x", "cascade_mask_rcnn_r50_fpn_1x",
        "faster_rcnn_dcn_r50_fpn_1x", "ssd_vgg16_300_voc", "ssd_mobilenet_v1_voc",
        "faster_rcnn_r50_fpn_gn_2x", "mask_rcnn_r50_fpn_gn_2x", "cascade_mask_rcnn_r50_fpn_gn_2x",
        "blazeface", "blazeface_nas", "blazeface_nas_v2", "blazeface_lite", "faceboxes",
        "faceboxes_lite",
        "yolov3_darknet53", "yolov3_mobilenet_v1", "yolov3_r34"]


@pytest.mark.parametrize("row", ROWS)
def test_static_names_fill_every_variable_of_the_row(row, tmp_path):
    state = static_state(row)
    path = tmp_path / "model_final.pdparams"  # fluid.save's format: the same names
    write_pdparams(state, path)
    model = from_static(row, read_static_weights(path))
    values = {w.path: w.numpy() for w in model.weights}
    assert len(values) == len(model.weights)
    first = "conv1_1_weights" if "_vd" in row or "vgg" in row else (
        "yolo_input.conv.weights" if "darknet" in row else "conv_1_weights" if row == "faceboxes"
        else "conv_1_1_weights" if row == "faceboxes_lite" else "conv1_weights")
    stem = ("stem1_conv/kernel" if "_vd" in row else "conv1_1/kernel" if "vgg" in row
            else "conv1_conv/kernel" if row == "faceboxes"
            else "conv1_1_conv/kernel" if row == "faceboxes_lite" else "stem_conv/kernel")
    np.testing.assert_array_equal(values[stem], _kernel(state[first]))
    if row.startswith(("faster", "mask", "cascade", "retinanet")):
        # affine_channel rows: scale and offset as they are (no statistics in the file).
        np.testing.assert_array_equal(values["res2_0_a_norm/scale"], state["bn2a_branch2a_scale"])
        np.testing.assert_array_equal(values["res2_0_a_norm/bias"], state["bn2a_branch2a_offset"])
        np.testing.assert_array_equal(values["res2_0_short_conv/kernel"],
                                      _kernel(state["res2a_branch1_weights"]))
    if row in ("faster_rcnn_r50_fpn_1x", "cascade_rcnn_r50_fpn_1x"):
        # fc6: tfdet row (h, w, c) is Paddle's row c * 49 + h * 7 + w.
        fc6 = values["box_head/fcs/fc1/kernel"]
        for h, w, c in ((0, 0, 1), (3, 5, 200), (6, 6, 255)):
            np.testing.assert_array_equal(fc6[(h * 7 + w) * 256 + c],
                                          state["fc6_w"][c * 49 + h * 7 + w])
        # background stays class 0: the classifier is copied as it is.
        np.testing.assert_array_equal(values["box_head/classifier/kernel"], state["cls_score_w"])
        np.testing.assert_array_equal(values["box_head/regressor/bias"], state["bbox_pred_b"])
    if row == "cascade_rcnn_r50_fpn_1x":
        np.testing.assert_array_equal(values["box_head_stage3/regressor/kernel"],
                                      state["bbox_pred_3_w"])
    if row == "mask_rcnn_r50_fpn_1x":
        # conv5_mask [in, out, kh, kw] -> Conv2DTranspose [kh, kw, out, in]
        np.testing.assert_array_equal(values["mask_head/mask_layers/deconv/kernel"],
                                      np.transpose(state["conv5_mask_w"], (2, 3, 1, 0)))
        np.testing.assert_array_equal(values["mask_head/mask_layers/mask_logits/bias"],
                                      state["mask_fcn_logits_b"])
    if row == "retinanet_r50_fpn_1x":
        np.testing.assert_array_equal(values["head/class_out/kernel"],
                                      _kernel(state["retnet_cls_pred_fpn3_w"]))
        np.testing.assert_array_equal(values["fpn_extra6/kernel"], _kernel(state["fpn_6_w"]))
    if row.startswith("yolov3"):
        bn = "yolo_block.1.tip.bn"
        np.testing.assert_array_equal(values["yolo_block1_tip_norm/moving_variance"],
                                      state[f"{bn}.var"])
        np.testing.assert_array_equal(values["yolo_block1_tip_norm/gamma"], state[f"{bn}.scale"])
        np.testing.assert_array_equal(values["output2/bias"], state["yolo_output.2.conv.bias"])
    if row == "cascade_mask_rcnn_r50_fpn_gn_2x":
        for head in ("box_head", "box_head_stage2", "box_head_stage3"):
            np.testing.assert_array_equal(values[f"{head}/convs/conv4_norm/gamma"],
                                          state["bbox_head_conv3_scale"])
        np.testing.assert_array_equal(values["box_head_stage3/classifier/bias"],
                                      state["cls_score_3_b"])
        np.testing.assert_array_equal(values["fpn_lateral3_gn/beta"],
                                      state["fpn_inner_res3_sum_lateral_offset"])
        np.testing.assert_array_equal(values["mask_head/mask_layers/conv2/kernel"],
                                      _kernel(state["mask_inter_feat_2_weights"]))
    if row == "blazeface":  # static weights: the dense 5x5 second conv of double blocks
        assert dict(model.config["backbone_settings"])["dense_second_dw"]
        np.testing.assert_array_equal(values["double_blaze3_dw2_conv/kernel"],
                                      _kernel(state["double_blaze_32_dw_weights"]))
        np.testing.assert_array_equal(values["double_blaze3_dw1_conv/kernel"], np.transpose(
            state["double_blaze_31_dw_weights"], (2, 3, 0, 1)))
        # creation order: conv1 is batch_norm_0, blaze_0's 1_dw batch_norm_1, ...
        np.testing.assert_array_equal(values["stem_norm/moving_variance"],
                                      state["batch_norm_0.w_2"])
        np.testing.assert_array_equal(values["blaze0_dw1_norm/gamma"], state["batch_norm_1.w_0"])
        # blaze_2 (strided): 1_dw 5, 1_sep 6, shortcut 7
        np.testing.assert_array_equal(values["blaze2_shortcut_norm/beta"],
                                      state["batch_norm_7.b_0"])
    if row == "faceboxes":  # conv_2 and its norm (batch_norm_1) are read and left out
        np.testing.assert_array_equal(values["inception0_conv1_norm/moving_mean"],
                                      state["batch_norm_2.w_1"])
    if row == "ssd_vgg16_300_voc":
        # creation order, not string order: conv2d_7 .. conv2d_18 (conv2d_10 sorts first)
        np.testing.assert_array_equal(values["head/box0/kernel"], _kernel(state["conv2d_7.w_0"]))
        np.testing.assert_array_equal(values["head/class1/bias"], state["conv2d_10.b_0"])
        np.testing.assert_array_equal(values["head/class5/kernel"],
                                      _kernel(state["conv2d_18.w_0"]))
        np.testing.assert_array_equal(values["conv4_3_norm/scale"], state["conv4_3_norm_scale"])
        np.testing.assert_array_equal(values["extra4_2_conv/bias"], state["conv9_2_biases"])
    if row == "ssd_mobilenet_v1_voc":
        np.testing.assert_array_equal(values["extra2_1_norm/moving_mean"],
                                      state["conv7_2_extra1_bn_mean"])
    if row == "faster_rcnn_dcn_r50_fpn_1x":
        np.testing.assert_array_equal(values["res5_2_b_conv/offset_kernel"],
                                      _kernel(state["res5c_branch2b_conv_offset.w_0"]))
    if row == "yolov3_mobilenet_v1":
        np.testing.assert_array_equal(values["block1_dw_conv/kernel"],
                                      np.transpose(state["conv2_1_dw_weights"], (2, 3, 0, 1)))


def test_static_conversion_names_what_does_not_fit():
    from tfdet import models
    state = static_state("faster_rcnn_r50_fpn_1x")
    del state["fc7_w"]
    state["fc8_w"] = np.zeros((1024, 1024), np.float32)
    state["conv_rpn_fpn2_w"] = np.zeros((256, 256, 1, 1), np.float32)
    model = models.get("faster_rcnn_r50_fpn_1x")
    with pytest.raises(ConversionError) as e:
        convert_static_state(state, model, "model_final")
    text = str(e.value)
    assert "missing Paddle tensor fc7_w" in text
    assert "unused Paddle tensor fc8_w" in text
    assert "shape mismatch for rpn_head/conv/kernel" in text
    with pytest.raises(ConversionError, match=r"expected 12 generated-name head convs "
                                              r"\(conv2d_N.w_0\), found 0"):
        headless = {k: v for k, v in static_state("ssd_vgg16_300_voc").items()
                    if not k.startswith("conv2d_")}
        convert_static_state(headless, models.get("ssd_vgg16_300_voc", num_classes=20))


def test_static_imagenet_weights_fold_into_a_frozen_norm_backbone(tmp_path):
    # ResNet50_cos_pretrained.tar (the static zoo's pretrain_weights): BN with statistics and
    # a classifier; the affine_channel backbone takes the folded scale and offset.
    from tfdet import models
    s = Static(1)
    s.resnet(50, stats=True)
    s.fc("fc_0", 2048, 1000)
    write_pdparams(s.state, tmp_path / "ResNet50_cos_pretrained.pdparams")
    model = models.get("faster_rcnn_r50_fpn_1x")
    before = {w.path: w.numpy() for w in model.weights}
    report = load_static_backbone(model, tmp_path / "ResNet50_cos_pretrained.pdparams")
    assert sorted(report["unused"]) == ["fc_0_b", "fc_0_w"]
    values = {w.path: w.numpy() for w in model.weights}
    st = s.state
    scale = st["bn4f_branch2c_scale"] / np.sqrt(st["bn4f_branch2c_variance"] + 1e-5)
    np.testing.assert_allclose(values["res4_5_c_norm/scale"], scale, rtol=1e-6)
    np.testing.assert_allclose(values["res4_5_c_norm/bias"],
                               st["bn4f_branch2c_offset"] - st["bn4f_branch2c_mean"] * scale,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(values["fpn_output2/kernel"], before["fpn_output2/kernel"])
    # ModelConfig.weights reaches it through the .pdparams reader (static names detected).
    from tfdet.convert import load_paddle_backbone
    again = models.get("faster_rcnn_r50_fpn_1x")
    assert load_paddle_backbone(again, tmp_path / "ResNet50_cos_pretrained.pdparams")[
        "assigned"] == report["assigned"]
    loaded = {w.path: w.numpy() for w in again.weights}
    np.testing.assert_array_equal(loaded["res4_5_c_norm/scale"], values["res4_5_c_norm/scale"])


def paddle_variable_bytes(array):
    """One variable file as paddle.static.save_vars writes it (float32): uint32 version,
    uint64 LoD levels (0), uint32 tensor version, int32 description size, the TensorDesc
    (field 1 data type FP32 = 5, field 2 each dim), the little-endian elements."""
    import struct

    def varint(v):
        out = b""
        while True:
            byte, v = v & 0x7F, v >> 7
            out += bytes([byte | (0x80 if v else 0)])
            if not v:
                return out
    desc = b"\x08\x05" + b"".join(b"\x10" + varint(d) for d in array.shape)
    return (struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc
            + np.ascontiguousarray(array, "<f4").tobytes())


def test_variable_writer_reproduces_paddles_bytes():
    # The writer the next test uses, byte for byte against paddle.static.save_vars' files.
    import pathlib
    fixtures = pathlib.Path(__file__).parent / "fixtures"
    for name, value in np.load(fixtures / "static_vars.npz").items():
        assert paddle_variable_bytes(value) == (fixtures / "static_vars" / name).read_bytes()


def test_convert_weights_static_row_writes_a_run_folder(tmp_path):
    import io
    import json
    import subprocess
    import sys
    import tarfile

    from tests.parity.test_convert_command import ROOT
    from tfdet import models
    row = "retinanet_r50_fpn_1x"
    state = static_state(row)
    archive = tmp_path / f"{row}.tar"
    with tarfile.open(archive, "w") as tar:  # as the zoo's .tar: a folder of variables
        for name, value in state.items():
            data = paddle_variable_bytes(value)
            info = tarfile.TarInfo(f"{row}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "converted"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_weights.py"),
                           "--static_row", row, "--weights", str(archive), "--output",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["num_classes"] == 80 and info["converted_from"]["static_row"] == row
    assert "ModelConfig.name = 'retinanet_r50_fpn_1x'" in (out / "config.gin").read_text()
    model = models.load(out)
    reference = from_static(row, state)
    assert model.config["fpn_extra"] == "conv_c5"  # the static zoo's P6 from C5
    x = np.random.default_rng(0).normal(size=(1, 128, 160, 3)).astype(np.float32)
    for ours, theirs in zip(model.raw_outputs(x), reference.raw_outputs(x)):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))

    backbone_only = tmp_path / "backbone.pdparams"
    s = Static(2)
    s.resnet(50, stats=True)
    write_pdparams(s.state, backbone_only)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_weights.py"),
                           "--static_row", row, "--weights", str(backbone_only), "--output",
                           str(tmp_path / "nothing")], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    assert done.returncode != 0 and "no static detector head found" in done.stderr
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(ConversionError, match="whole static detector"):
        load_static_backbone(models.get(row), archive)
