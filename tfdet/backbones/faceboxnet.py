"""FaceBoxNet, FaceBoxes' backbone (Zhang et al. 2017), as the static-graph PaddleDetection
zoo builds it (static/ppdet/modeling/backbones/faceboxnet.py). Every conv has BN and ReLU and
no bias; "CReLU" blocks concatenate that output with its negation, as the static code does
(the paper's CReLU is [relu(x), relu(-x)]).

Original edition: a 7x7 / 4 CReLU conv (24 -> 48 channels), a 3x3 / 2 max pool (Paddle's
symmetric padding), three Inception blocks (stride 8, 128 channels), then 1x1 128 + 3x3 / 2
256 twice (strides 16 and 32). The static code also builds the paper's second CReLU conv
(5x5 / 2, 64) and its pool but pools the first conv's output instead, so they never reach the
output: tfdet leaves them out (76,928 weights the static model carries unused).

Lite edition: 3x3 / 2 CReLU convs of 8 and 24 (16 and 48 channels), a 3x3 average pool
(stride 1), 3x3 / 2 48 and 1x1 64 convs, three Inception blocks (stride 8), then 1x1 128 +
3x3 / 2 256 (stride 16).

Inception block: [3x3 average pool (stride 1, padding excluded) + 1x1 32 | 1x1 32 |
1x1 24 + 3x3 32 | 1x1 24 + 3x3 32 + 3x3 32] concatenated: 128 channels.
"""
import keras

from tfdet.layers.conv_block import conv_norm_act
from tfdet.layers.pool import PaddedMaxPool2D


def _conv(x, filters, kernel, stride, name, norm):
    return conv_norm_act(x, filters, kernel, stride, name, norm=norm,
                         kernel_initializer="he_normal")


def crelu_block(x, filters, kernel, stride, name, norm="bn"):
    """x -> [B, ceil(H / stride), ceil(W / stride), 2 * filters]: conv + norm + ReLU, then
    that and its negation."""
    y = _conv(x, filters, kernel, stride, name, norm)
    negated = keras.layers.Rescaling(-1.0, name=f"{name}_neg")(y)
    return keras.layers.Concatenate(name=f"{name}_crelu")([y, negated])


def inception_block(x, name, norm="bn"):
    """x [B, H, W, C] -> [B, H, W, 128] (see the module docstring)."""
    pooled = keras.layers.AveragePooling2D(3, 1, padding="same", name=f"{name}_pool1")(x)
    a = _conv(pooled, 32, 1, 1, f"{name}_conv1", norm)
    b = _conv(x, 32, 1, 1, f"{name}_conv2", norm)
    c = _conv(_conv(x, 24, 1, 1, f"{name}_conv3_1", norm), 32, 3, 1, f"{name}_conv3_2", norm)
    d = _conv(x, 24, 1, 1, f"{name}_conv4_1", norm)
    d = _conv(_conv(d, 32, 3, 1, f"{name}_conv4_2", norm), 32, 3, 1, f"{name}_conv4_3", norm)
    return keras.layers.Concatenate(name=f"{name}_concat")([a, b, c, d])


def faceboxnet(lite=False, norm="bn", input_size=None, name="faceboxnet"):
    """images [B, H, W, 3] -> original: the stride-8, 16 and 32 maps (128, 256, 256
    channels); lite: the stride-8 and 16 maps (128, 256)."""
    images = keras.Input([input_size, input_size, 3], name="images")
    if lite:
        x = crelu_block(images, 8, 3, 2, "conv1_1", norm)
        x = crelu_block(x, 24, 3, 2, "conv1_2", norm)
        x = keras.layers.AveragePooling2D(3, 1, padding="same", name="pool1")(x)
        x = _conv(x, 48, 3, 2, "conv2_1", norm)
        x = _conv(x, 64, 1, 1, "conv2_2", norm)
    else:
        x = crelu_block(images, 24, 7, 4, "conv1", norm)
        x = PaddedMaxPool2D(3, 2, 1, name="pool2")(x)
    for i in range(3):
        x = inception_block(x, f"inception{i}", norm)
    maps = [x]
    for stage in (3,) if lite else (3, 4):
        x = _conv(_conv(x, 128, 1, 1, f"conv{stage}_1", norm), 256, 3, 2, f"conv{stage}_2",
                  norm)
        maps.append(x)
    return keras.Model(images, maps, name=name)
