"""BlazeNet, BlazeFace's backbone (Bazarevsky et al. 2019), as PaddleDetection 2.6.0 builds it
(ppdet/modeling/backbones/blazenet.py): a 3x3 / 2 stem conv, single BlazeBlocks (depthwise
5x5 + 1x1) and double BlazeBlocks (depthwise 5x5 + 1x1 down to a bottleneck, depthwise 5x5 +
1x1 up), each added to its input (a 2x2 max pool, ceil mode, and a 1x1 conv when the block is
strided) and passed through ReLU. Every conv has BN and no bias.

Activations as ppdet's ConvBNLayer applies them: ReLU after every depthwise conv, the stem,
the shortcut conv and a double block's second 1x1; the first 1x1 gets `act` in double blocks
and none in single blocks. `use_5x5=False` replaces each 5x5
depthwise conv by two 3x3 ones, the second carrying the stride.

The static-graph zoo's editions (static/ppdet/modeling/backbones/blazenet.py):
- `dense_second_dw=True`: its double blocks' second 5x5 conv is a dense conv (the static code
  gives it no groups), where ppdet 2.x has a depthwise one. The NAS and NAS_V2 editions are
  this network with their configs' block lists.
- `blazenet_lite`: the Lite edition, 5x5 / 2 stem and 15 "Blaze_lite" blocks (3x3 depthwise
  + 1x1, both with ReLU; a shortcut pooled when strided and through a 1x1 conv when the width
  changes).
The static code trains the backbone convs at a tenth of the learning rate; tfdet does not.
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
                name="blaze", dense_second_dw=False):
    """x [B, H, W, C] -> [B, ceil(H / stride), ceil(W / stride), double or out2]. ppdet's
    depthwise conv takes C = out1 (asserted)."""
    if int(x.shape[-1]) != out1:
        raise ValueError(f"{name}: a depthwise conv of {out1} channels on {x.shape[-1]}")
    y = _depthwise(x, stride, f"{name}_dw1", use_5x5, norm)
    y = conv_norm_act(y, out2, 1, 1, f"{name}_pw1", norm=norm, act=act if double else None,
                      kernel_initializer="he_normal")
    if double:
        if dense_second_dw and use_5x5:  # the static zoo's dense 5x5 "2_dw" conv
            y = conv_norm_act(y, out2, 5, 1, f"{name}_dw2", norm=norm,
                              kernel_initializer="he_normal")
        else:
            y = _depthwise(y, 1, f"{name}_dw2", use_5x5, norm)
        y = conv_norm_act(y, double, 1, 1, f"{name}_pw2", norm=norm,
                          kernel_initializer="he_normal")
    if stride > 1:
        x = keras.layers.MaxPool2D(stride, stride, padding="same", name=f"{name}_pool")(x)
        x = conv_norm_act(x, double or out2, 1, 1, f"{name}_shortcut", norm=norm,
                          kernel_initializer="he_normal")
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, y]))


def blazenet(blaze_filters=BLAZE_FILTERS, double_blaze_filters=DOUBLE_BLAZE_FILTERS,
             use_5x5=True, act="relu", norm="bn", input_size=None, name="blazenet",
             dense_second_dw=False, lite=False):
    """images [B, H, W, 3] -> [the map before the last strided double block (stride 8 with
    the defaults, 96 channels), the last block's (stride 16, 96)], as BlazeNet returns them
    (ppdet 2.x: its outs[-4], the same block with the default lists). lite: the static zoo's
    Lite edition (blazenet_lite; the block lists do not apply)."""
    if lite:
        return blazenet_lite(norm, input_size, name)
    images = keras.Input([input_size, input_size, 3], name="images")
    x = conv_norm_act(images, blaze_filters[0][0], 3, 2, "stem", norm=norm,
                      kernel_initializer="he_normal")
    for i, (out1, out2, *stride) in enumerate(blaze_filters):
        x = blaze_block(x, out1, out2, None, *stride, use_5x5=use_5x5, act=act, norm=norm,
                        name=f"blaze{i}")
    before_strided = None
    for i, (out1, bottleneck, out, *stride) in enumerate(double_blaze_filters):
        if stride and stride[0] > 1:
            before_strided = x
        x = blaze_block(x, out1, bottleneck, out, *stride, use_5x5=use_5x5, act=act,
                        norm=norm, name=f"double_blaze{i}", dense_second_dw=dense_second_dw)
    if before_strided is None:
        raise ValueError("double_blaze_filters needs a strided block (its input is the "
                         "higher-resolution map)")
    return keras.Model(images, [before_strided, x], name=name)


# The Lite edition's blocks after its stem: (out channels, stride); inputs 24 wide.
LITE_BLOCKS = ((24, 1), (28, 1), (32, 2), (36, 1), (42, 1), (48, 2), (56, 1), (64, 1), (72, 1),
               (80, 1), (88, 1), (96, 2), (96, 1), (96, 1), (96, 1), (96, 1))


def blaze_lite_block(x, out, stride=1, norm="bn", name="lite"):
    """The static zoo's Blaze_lite: x [B, H, W, C] -> [B, ceil(H / stride), ceil(W / stride),
    out]: 3x3 depthwise (stride) + 1x1, each with norm and ReLU, added to the shortcut (2x2
    max pool, ceil mode, when strided; a 1x1 conv with norm and ReLU when C != out)."""
    channels = int(x.shape[-1])
    if stride > 1 and channels == out:
        raise ValueError(f"{name}: a strided Blaze_lite block must change the width "
                         f"(the static code pads the channels only then)")
    y = conv_norm_act(x, None, 3, stride, f"{name}_dw", norm=norm, conv="depthwise",
                      kernel_initializer="he_normal")
    y = conv_norm_act(y, out, 1, 1, f"{name}_pw", norm=norm, kernel_initializer="he_normal")
    if stride > 1:
        x = keras.layers.MaxPool2D(stride, stride, padding="same", name=f"{name}_pool")(x)
    if channels != out:
        x = conv_norm_act(x, out, 1, 1, f"{name}_shortcut", norm=norm,
                          kernel_initializer="he_normal")
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, y]))


def blazenet_lite(norm="bn", input_size=None, name="blazenet_lite"):
    """The static zoo's BlazeNet Lite: images -> [the 88-channel stride-8 map (its conv12),
    the 96-channel stride-16 map (conv17)]."""
    images = keras.Input([input_size, input_size, 3], name="images")
    x = conv_norm_act(images, 24, 5, 2, "stem", norm=norm, kernel_initializer="he_normal")
    maps = []
    for i, (out, stride) in enumerate(LITE_BLOCKS):
        if stride > 1:
            maps.append(x)
        x = blaze_lite_block(x, out, stride, norm, name=f"lite{i + 2}")
    return keras.Model(images, [maps[-1], x], name=name)
