"""MobileNetV1 (Howard et al. 2017) as PaddleDetection builds it for SSD and YOLOv3: a 3x3 / 2
stem conv of 32, then 13 depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each
followed by a norm and ReLU). Strided convs pad symmetrically, as Paddle does.
"""
import keras

from tfdet.layers.norm import make_norm

# (pointwise filters, depthwise stride) of blocks 1..13.
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
           (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _norm_relu(x, norm, name):
    x = make_norm(norm, f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _pad_for_stride(x, stride, name):
    if stride == 1:
        return x, "same"
    return keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x), "valid"


STATIC_BLOCKS = (5, 11, 13)  # the static zoo's C3, C4, C5: conv4_1, conv5_5, conv6
PPDET2_BLOCKS = (4, 6, 13)  # ppdet 2.x YOLOv3's feature_maps: conv3_2, conv4_2, conv6


def mobilenet_v1(scale=1.0, norm="bn", input_size=None, name="mobilenet_v1",
                 feature_blocks=STATIC_BLOCKS):
    """images [B, H, W, 3] -> [C3 (stride 8, 256 x scale), C4 (stride 16, 512 x scale),
    C5 (stride 32, 1024 x scale)]: the outputs of blocks `feature_blocks` (1-based; the
    static zoo's 5, 11, 13 by default, ppdet 2.x YOLOv3 takes 4, 6, 13: the same channels,
    each the first map of its stride)."""
    images = keras.Input([input_size, input_size, 3], name="images")
    x, padding = _pad_for_stride(images, 2, "stem")
    x = keras.layers.Conv2D(int(32 * scale), 3, 2, padding=padding, use_bias=False,
                            name="stem_conv")(x)
    x = _norm_relu(x, norm, "stem")
    outputs = []
    for i, (filters, stride) in enumerate(_BLOCKS, start=1):
        x, padding = _pad_for_stride(x, stride, f"block{i}_dw")
        x = keras.layers.DepthwiseConv2D(3, stride, padding=padding, use_bias=False,
                                         name=f"block{i}_dw_conv")(x)
        x = _norm_relu(x, norm, f"block{i}_dw")
        x = keras.layers.Conv2D(int(filters * scale), 1, use_bias=False,
                                name=f"block{i}_pw_conv")(x)
        x = _norm_relu(x, norm, f"block{i}_pw")
        if i in feature_blocks:
            outputs.append(x)
    return keras.Model(images, outputs, name=name)
