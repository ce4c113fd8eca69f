"""BlazeFace-FPN-SSH's neck (ppdet 2.6.0 BlazeNeck, neck_type 'fpn_ssh', 'only_fpn' or
'only_ssh'), on BlazeNet's stride-8 and stride-16 maps. Every conv has BN and no bias; 'leaky'
is ppdet's F.leaky_relu (slope 0.01).

FPN (C8, C16 of `channels` each): P16 = 1x1 conv to channels / 2 (leaky) of C16;
P8 = 3x3 conv (leaky) of [1x1 conv to channels / 2 (leaky) of C8] + nearest 2x upsampling of
P16 (cropped to C8's size). -> (P8, P16), channels / 2 each.
SSH (x of C channels): c0 = 3x3 conv to C / 2 (no act); c1 = 3x3 to C / 4 (leaky) of c0;
c2 = 3x3 (no act) of c1; c3 = 3x3 (leaky) of c2; c4 = 3x3 (no act) of c3;
ReLU(concat[c0, c2, c4]) -> C channels.
"""
import keras

from tfdet.layers.conv_block import conv_norm_act
from tfdet.layers.crop import CropToMatch

NECK_TYPES = ("fpn_ssh", "only_fpn", "only_ssh")


def _conv(x, filters, kernel, name, act, norm):
    return conv_norm_act(x, filters, kernel, 1, name, norm=norm, act=act, leaky_slope=0.01,
                         kernel_initializer="he_normal")


def blaze_fpn(c8, c16, channels, norm="bn", name="fpn"):
    """(C8, C16) -> (P8, P16) with channels // 2 each."""
    half = channels // 2
    p16 = _conv(c16, half, 1, f"{name}_output2", "leaky", norm)
    lateral = _conv(c8, half, 1, f"{name}_output1", "leaky", norm)
    up = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(p16)
    if up.shape[1:3] != lateral.shape[1:3] or None in up.shape[1:3]:
        # an odd stride-8 map: Paddle's nearest resize to its size drops the last row / col
        up = CropToMatch(name=f"{name}_crop")([up, lateral])
    merged = keras.layers.Add(name=f"{name}_add")([lateral, up])
    return _conv(merged, half, 3, f"{name}_merge", "leaky", norm), p16


def ssh_module(x, channels, norm="bn", name="ssh"):
    """x [B, H, W, C] -> [B, H, W, channels] (see the module docstring)."""
    c0 = _conv(x, channels // 2, 3, f"{name}_conv3", None, norm)
    c1 = _conv(c0, channels // 4, 3, f"{name}_conv5_1", "leaky", norm)
    c2 = _conv(c1, channels // 4, 3, f"{name}_conv5_2", None, norm)
    c3 = _conv(c2, channels // 4, 3, f"{name}_conv7_1", "leaky", norm)
    c4 = _conv(c3, channels // 4, 3, f"{name}_conv7_2", None, norm)
    merged = keras.layers.Concatenate(name=f"{name}_concat")([c0, c2, c4])
    return keras.layers.ReLU(name=f"{name}_out")(merged)


def blazeface_neck(features, neck_type="fpn_ssh", norm="bn"):
    """[C8, C16] -> the two maps the head reads."""
    if neck_type not in NECK_TYPES:
        raise ValueError(f"neck_type must be one of {NECK_TYPES}, got {neck_type!r}")
    c8, c16 = features
    if neck_type != "only_ssh":
        c8, c16 = blaze_fpn(c8, c16, int(c16.shape[-1]), norm)
        if neck_type == "only_fpn":
            return [c8, c16]
    return [ssh_module(c8, int(c8.shape[-1]), norm, "ssh1"),
            ssh_module(c16, int(c16.shape[-1]), norm, "ssh2")]
