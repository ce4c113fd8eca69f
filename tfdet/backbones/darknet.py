"""DarkNet-53 (Redmon and Farhadi 2018), YOLOv3's backbone: conv + norm + LeakyReLU(0.1)
everywhere; a 3x3 stem of 32, then five stages, each a 3x3 / 2 downsampling conv doubling the
channels and residual blocks (1x1 halving, 3x3 restoring, added): 1, 2, 8, 8, 4 blocks.
Strided convs pad symmetrically, as Paddle and Darknet do.
"""
import keras

from tfdet.layers.conv_block import conv_norm_act

_STAGES = (1, 2, 8, 8, 4)


def conv_norm_leaky(x, filters, kernel, stride, norm, name):
    """Conv (no bias) + norm + LeakyReLU(0.1); also YOLOv3's head layer."""
    return conv_norm_act(x, filters, kernel, stride, name, norm=norm, act="leaky")


def darknet53(norm="bn", input_size=None, name="darknet53"):
    """images [B, H, W, 3] -> [C3 (stride 8, 256), C4 (stride 16, 512), C5 (stride 32, 1024)]."""
    images = keras.Input([input_size, input_size, 3], name="images")
    x = conv_norm_leaky(images, 32, 3, 1, norm, "stem")
    outputs = []
    for stage, blocks in enumerate(_STAGES):
        filters = 64 * 2**stage
        x = conv_norm_leaky(x, filters, 3, 2, norm, f"stage{stage + 1}_down")
        for b in range(blocks):
            name_b = f"stage{stage + 1}_block{b + 1}"
            y = conv_norm_leaky(x, filters // 2, 1, 1, norm, f"{name_b}_a")
            y = conv_norm_leaky(y, filters, 3, 1, norm, f"{name_b}_b")
            x = keras.layers.Add(name=f"{name_b}_add")([x, y])
        if stage >= 2:
            outputs.append(x)
    return keras.Model(images, outputs, name=name)
