"""The one conv -> norm -> activation block of tfdet's backbones, necks and heads (mmcv's
ConvModule, detectron2's Conv2d with norm / activation).

Padding is Paddle's: a strided k x k conv (k > 1) pads (k - 1) // 2 * dilation zeros on every
side and convolves 'valid' (Keras' 'same' would pad 0 before / 1 after for even sizes); other
convs pad 'same' (symmetric for odd k). `pad=N` pads N on every side instead, then 'valid'.
conv: 'plain' (Conv2D), 'depthwise' (DepthwiseConv2D) or 'dcn' (DeformableConv2D, DCNv2: pads
itself as Paddle does). norm: a tfdet.layers.norm kind or None (then the conv has a bias unless
use_bias says otherwise). act: 'relu', 'relu6', 'leaky' (slope 0.1, DarkNet / YOLOv3;
`leaky_slope` sets another: ppdet's F.leaky_relu default 0.01 in BlazeFace-FPN-SSH),
'hard_swish' (x * relu6(x + 3) / 6) or None;
without a norm a plain conv applies relu / relu6 itself (one layer, whose output VGG / SSD
name), otherwise the activation is a layer of its own.
Layer names default to <name>_pad, <name>_conv, <name>_norm and <name>_relu / _leaky; the
`*_name` arguments keep a module's own (checkpoint and converter) names.
"""
import keras

from tfdet.layers.deform_conv import DeformableConv2D
from tfdet.layers.norm import make_norm

ACTIVATIONS = ("relu", "relu6", "leaky", "hard_swish", None)


def initializer(class_name, **config):
    """A Keras initializer as a spec that each layer turns into an instance of its own, e.g.
    initializer("RandomNormal", stddev=0.01). One unseeded Keras 3 initializer instance draws
    the same values at every call, so handing one instance to several layers gives every
    same-shaped kernel the same weights (as if RetinaNet's eight tower convs were one); the
    zoo draws each kernel independently."""
    return {"class_name": class_name, "config": config}


def conv_norm_act_layers(filters, kernel, stride=1, name="conv", norm=None, act="relu",
                         conv="plain", groups=1, dilation=1, pad=None, use_bias=None,
                         kernel_initializer="glorot_uniform", trainable=True, conv_name=None,
                         norm_name=None, act_name=None, pad_name=None, leaky_slope=0.1):
    """The block's layers in order ([pad], conv, [norm], [act]), for keras.Sequential towers
    or for `conv_norm_act`. See the module docstring for the arguments."""
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {ACTIVATIONS}, got {act!r}")
    if use_bias is None:
        use_bias = norm is None
    fused = norm is None and act in ("relu", "relu6") and conv != "dcn"
    layers = []
    if conv == "dcn":
        if pad is not None:
            raise ValueError("conv='dcn' pads itself ((k - 1) // 2 * dilation); pad must be None")
        layers.append(DeformableConv2D(filters, kernel, stride, dilation_rate=dilation,
                                       groups=groups, use_bias=use_bias,
                                       kernel_initializer=kernel_initializer,
                                       name=conv_name or f"{name}_conv", trainable=trainable))
    elif conv in ("plain", "depthwise"):
        if pad is None and stride > 1 and kernel > 1:
            pad = (kernel - 1) // 2 * dilation
        if pad:
            layers.append(keras.layers.ZeroPadding2D(pad, name=pad_name or f"{name}_pad"))
        padding = "valid" if pad is not None else "same"
        common = dict(strides=stride, padding=padding, dilation_rate=dilation,
                      use_bias=use_bias, activation=act if fused else None,
                      name=conv_name or f"{name}_conv", trainable=trainable)
        if conv == "depthwise":
            layers.append(keras.layers.DepthwiseConv2D(
                kernel, depthwise_initializer=kernel_initializer, **common))
        else:
            layers.append(keras.layers.Conv2D(filters, kernel, groups=groups,
                                              kernel_initializer=kernel_initializer, **common))
    else:
        raise ValueError(f"conv must be 'plain', 'depthwise' or 'dcn', got {conv!r}")
    if norm is not None:
        layer = make_norm(norm, norm_name or f"{name}_norm")
        if not trainable:
            layer.trainable = False
        layers.append(layer)
    if act == "leaky":
        layers.append(keras.layers.LeakyReLU(leaky_slope, name=act_name or f"{name}_leaky"))
    elif act == "hard_swish":
        layers.append(keras.layers.Activation("hard_swish", name=act_name or f"{name}_hswish"))
    elif act is not None and not fused:
        layers.append(keras.layers.ReLU(6.0 if act == "relu6" else None,
                                        name=act_name or f"{name}_relu"))
    return layers


def conv_norm_act(x, filters, kernel, stride=1, name="conv", **kwargs):
    """x [B, H, W, C] through the block -> [B, ceil(H / stride), ceil(W / stride), filters]
    (C for depthwise). kwargs: those of conv_norm_act_layers."""
    for layer in conv_norm_act_layers(filters, kernel, stride, name, **kwargs):
        x = layer(x)
    return x
