"""BlazeNet, BlazeFace's backbone (Bazarevsky et al. 2019), as PaddleDetection 2.6.0 builds it
(ppdet/modeling/backbones/blazenet.py): a 3x3 / 2 stem conv, single BlazeBlocks (depthwise
5x5 + 1x1) and double BlazeBlocks (depthwise 5x5 + 1x1 down to a bottleneck, depthwise 5x5 +
1x1 up), each added to its input (a 2x2 max pool, ceil mode, and a 1x1 conv when the block is
strided) and passed through ReLU. Every conv has BN and no bias.

Activations as ppdet's ConvBNLayer applies them: ReLU after every depthwise conv, the stem,
the shortcut conv and a double block's second 1x1; the first 1x1 gets `act` in double blocks
and none in single blocks. `use_5x5=False` (the Lite edition's choice) replaces each 5x5
depthwise conv by two 3x3 ones, the second carrying the stride.
"""
import keras

from tfdet.layers.conv_block import conv_norm_act

# ppdet 2.6.0 BlazeNet defaults (blazeface_1000e.yml): (out1, out2[, stride]) single blocks,
# (out1, bottleneck, out[, stride]) double blocks.
BLAZE_FILTERS = ((24, 24), (24, 24), (24, 48, 2), (48, 48), (48, 48))
DOUBLE_BLAZE_FILTERS = ((48, 24, 96, 2), (96, 24, 96), (96, 24, 96), (96, 24, 96, 2),
                        (96, 24, 96), (96, 24, 96))


def _depthwise(x, stride, name, use_5x5, norm):
    if use_5x5:
        return conv_norm_act(x, None, 5, stride, name, norm=norm, conv="depthwise",
                             kernel_initializer="he_normal")
    x = conv_norm_act(x, None, 3, 1, f"{name}_1", norm=norm, conv="depthwise",
                      kernel_initializer="he_normal")
    return conv_norm_act(x, None, 3, stride, f"{name}_2", norm=norm, conv="depthwise",
                         kernel_initializer="he_normal")


def blaze_block(x, out1, out2, double=None, stride=1, use_5x5=True, act="relu", norm="bn",
                name="blaze"):
    """x [B, H, W, C] -> [B, ceil(H / stride), ceil(W / stride), double or out2]. ppdet's
    depthwise conv takes C = out1 (asserted)."""
    if int(x.shape[-1]) != out1:
        raise ValueError(f"{name}: a depthwise conv of {out1} channels on {x.shape[-1]}")
    y = _depthwise(x, stride, f"{name}_dw1", use_5x5, norm)
    y = conv_norm_act(y, out2, 1, 1, f"{name}_pw1", norm=norm, act=act if double else None,
                      kernel_initializer="he_normal")
    if double:
        y = _depthwise(y, 1, f"{name}_dw2", use_5x5, norm)
        y = conv_norm_act(y, double, 1, 1, f"{name}_pw2", norm=norm,
                          kernel_initializer="he_normal")
    if stride > 1:
        x = keras.layers.MaxPool2D(stride, stride, padding="same", name=f"{name}_pool")(x)
        x = conv_norm_act(x, double or out2, 1, 1, f"{name}_shortcut", norm=norm,
                          kernel_initializer="he_normal")
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, y]))


def blazenet(blaze_filters=BLAZE_FILTERS, double_blaze_filters=DOUBLE_BLAZE_FILTERS,
             use_5x5=True, act="relu", norm="bn", input_size=None, name="blazenet"):
    """images [B, H, W, 3] -> [the fourth-last block's output (stride 8 with the defaults,
    96 channels), the last block's (stride 16, 96)], as ppdet's BlazeNet returns."""
    images = keras.Input([input_size, input_size, 3], name="images")
    x = conv_norm_act(images, blaze_filters[0][0], 3, 2, "stem", norm=norm,
                      kernel_initializer="he_normal")
    outputs = []
    for i, (out1, out2, *stride) in enumerate(blaze_filters):
        x = blaze_block(x, out1, out2, None, *stride, use_5x5=use_5x5, act=act, norm=norm,
                        name=f"blaze{i}")
        outputs.append(x)
    for i, (out1, bottleneck, out, *stride) in enumerate(double_blaze_filters):
        x = blaze_block(x, out1, bottleneck, out, *stride, use_5x5=use_5x5, act=act,
                        norm=norm, name=f"double_blaze{i}")
        outputs.append(x)
    return keras.Model(images, [outputs[-4], outputs[-1]], name=name)
