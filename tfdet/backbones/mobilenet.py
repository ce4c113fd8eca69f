"""MobileNetV1 (Howard et al. 2017) as PaddleDetection builds it for SSD and YOLOv3: a 3x3 / 2
stem conv of 32, then 13 depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each
followed by a norm and ReLU). Strided convs pad symmetrically, as Paddle does.
"""
import keras

from tfdet.layers.conv_block import conv_norm_act

# (pointwise filters, depthwise stride) of blocks 1..13.
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
           (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


STATIC_BLOCKS = (5, 11, 13)  # the static zoo's C3, C4, C5: conv4_1, conv5_5, conv6
PPDET2_BLOCKS = (4, 6, 13)  # ppdet 2.x YOLOv3's feature_maps: conv3_2, conv4_2, conv6


def mobilenet_v1(scale=1.0, norm="bn", input_size=None, name="mobilenet_v1",
                 feature_blocks=STATIC_BLOCKS):
    """images [B, H, W, 3] -> [C3 (stride 8, 256 x scale), C4 (stride 16, 512 x scale),
    C5 (stride 32, 1024 x scale)]: the outputs of blocks `feature_blocks` (1-based; the
    static zoo's 5, 11, 13 by default, ppdet 2.x YOLOv3 takes 4, 6, 13: the same channels,
    each the first map of its stride)."""
    images = keras.Input([input_size, input_size, 3], name="images")
    x = conv_norm_act(images, int(32 * scale), 3, 2, "stem", norm=norm)
    outputs = []
    for i, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = conv_norm_act(x, None, 3, stride, f"block{i}_dw", norm=norm, conv="depthwise")
        x = conv_norm_act(x, int(filters * scale), 1, 1, f"block{i}_pw", norm=norm)
        if i in feature_blocks:
            outputs.append(x)
    return keras.Model(images, outputs, name=name)
