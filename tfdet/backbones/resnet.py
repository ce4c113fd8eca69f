"""ResNet / ResNeXt backbones (variants b and d = vd), returning C2..C5.

Variant b (the zoo's default): the stride sits on the 3x3 conv of a bottleneck; stem 7x7/2 +
3x3/2 max pool; projection shortcut = 1x1 conv with the stride. Variant d (vd): stem of three
3x3 convs (32, 32, 64), projection shortcut = 2x2 average pool (ceil mode) then a stride-1 1x1
conv, except in the first stage. The first block (res2a) always has a projection shortcut, also
in basic-block ResNets (18 / 34) whose res2a keeps 64 channels, as PaddleDetection builds them.
dcn_stages: the stages (3..5) whose blocks' 3x3 conv (a bottleneck's conv2, a basic block's
second conv) is a DCNv2 (tfdet.layers.DeformableConv2D), as the zoo's `dcn` rows (c3-c5). ResNeXt: grouped 3x3 convs (`groups` x `group_width`).
Strided convs pad symmetrically ((k - 1) // 2 each side), as PaddlePaddle / PyTorch do, so
converted weights give the same features. Convs have no bias; a norm follows each.
"""
import keras

from tfdet.layers.conv_block import conv_norm_act
from tfdet.registry import BACKBONES

DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def _conv_norm(x, filters, kernel, stride, name, norm, act=True, groups=1, trainable=True,
               dcn=False):
    return conv_norm_act(x, filters, kernel, stride, name, norm=norm,
                         act="relu" if act else None, conv="dcn" if dcn else "plain",
                         groups=groups, kernel_initializer="he_normal", trainable=trainable)


def _shortcut(x, filters, stride, name, norm, variant, is_first, trainable):
    if variant == "d" and stride > 1 and not is_first:
        x = keras.layers.AveragePooling2D(2, 2, padding="same", name=f"{name}_pool")(x)
        stride = 1
    return _conv_norm(x, filters, 1, stride, name, norm, act=False, trainable=trainable)


def _block(x, kind, planes, stride, name, norm, variant, groups, group_width, is_first,
           trainable, dcn=False):
    """One residual block; is_first: the network's first block (res2a), which has a
    projection shortcut even in a basic-block ResNet (Paddle's `depth < 50 and is_first`)."""
    in_channels = x.shape[-1]
    if kind == "basic":
        out_channels = planes
        y = _conv_norm(x, planes, 3, stride, f"{name}_a", norm, trainable=trainable)
        y = _conv_norm(y, planes, 3, 1, f"{name}_b", norm, act=False, trainable=trainable,
                       dcn=dcn)
    else:
        out_channels = planes * 4
        width = planes if groups == 1 else groups * group_width * planes // 64
        y = _conv_norm(x, width, 1, 1, f"{name}_a", norm, trainable=trainable)
        y = _conv_norm(y, width, 3, stride, f"{name}_b", norm, groups=groups,
                       trainable=trainable, dcn=dcn)
        y = _conv_norm(y, out_channels, 1, 1, f"{name}_c", norm, act=False, trainable=trainable)
    if stride != 1 or in_channels != out_channels or is_first:
        x = _shortcut(x, out_channels, stride, f"{name}_short", norm, variant, is_first,
                      trainable)
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _check(depth, variant):
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth {depth} not supported; choose from {sorted(DEPTHS)}")
    if variant not in ("b", "d"):
        raise ValueError(f"ResNet variant {variant!r} not supported; choose 'b' or 'd'")


def resnet_stage(stage, input_channels, depth=50, variant="b", groups=1, group_width=64,
                 norm="affine", trainable=True, name=None, dcn=False):
    """One stage (2..5) of a ResNet as its own Keras model, [N, H, W, input_channels] ->
    [N, ceil(H / 2), ceil(W / 2), C] (stride 1 for stage 2): the res5 RoI head of C4 models."""
    _check(depth, variant)
    kind, blocks = DEPTHS[depth]
    index = stage - 2
    inputs = keras.Input([None, None, input_channels], name=f"res{stage}_input")
    x = inputs
    for b in range(blocks[index]):
        x = _block(x, kind, 64 * 2**index, 2 if b == 0 and index > 0 else 1,
                   f"res{stage}_{b}", norm, variant, groups, group_width,
                   is_first=index == 0 and b == 0, trainable=trainable, dcn=dcn)
    return keras.Model(inputs, x, name=name or f"res{stage}")


def resnet(depth=50, variant="b", groups=1, group_width=64, norm="affine", freeze_at=2,
           input_channels=3, num_stages=4, name=None, dcn_stages=()):
    """A ResNet(-vd) / ResNeXt body as a Keras model: images [B, H, W, 3] -> [C2, C3, C4, C5]
    (strides 4, 8, 16, 32); with num_stages=3, [C2, C3, C4] (C4 models put res5 in the head).

    depth: 18, 34, 50, 101, 152 or 200. variant: 'b' or 'd'. groups / group_width: ResNeXt
    cardinality and width (64 and 4 for 64x4d). norm: see tfdet.layers.norm. freeze_at: the
    stem (1) and stages 2..freeze_at keep their weights fixed (0 trains everything).
    dcn_stages: stages (3..5) with deformable 3x3 convs, e.g. (3, 4, 5) for the zoo's c3-c5.
    """
    if any(s not in (2, 3, 4, 5) for s in dcn_stages):
        raise ValueError(f"dcn_stages must be among 2..5, got {tuple(dcn_stages)}")
    _check(depth, variant)
    kind, blocks = DEPTHS[depth]
    images = keras.Input([None, None, input_channels], name="images")
    stem_trainable = freeze_at < 1
    if variant == "d":
        x = _conv_norm(images, 32, 3, 2, "stem1", norm, trainable=stem_trainable)
        x = _conv_norm(x, 32, 3, 1, "stem2", norm, trainable=stem_trainable)
        x = _conv_norm(x, 64, 3, 1, "stem3", norm, trainable=stem_trainable)
    else:
        x = _conv_norm(images, 64, 7, 2, "stem", norm, trainable=stem_trainable)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    outputs = []
    for stage, num_blocks in enumerate(blocks[:num_stages]):
        planes = 64 * 2**stage
        trainable = stage + 2 > freeze_at
        for b in range(num_blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            x = _block(x, kind, planes, stride, f"res{stage + 2}_{b}", norm, variant, groups,
                       group_width, is_first=stage == 0 and b == 0, trainable=trainable,
                       dcn=stage + 2 in dcn_stages)
        outputs.append(x)
    suffix = f"_{groups}x{group_width}d" if groups > 1 else ""
    return keras.Model(images, outputs,
                       name=name or f"resnet{depth}{'_vd' if variant == 'd' else ''}{suffix}")


@BACKBONES.register("resnet")
def resnet_backbone(settings, last_stage=5):
    """The registered 'resnet' backbone: resnet() with the detector's depth, variant, groups,
    group_width, norm, freeze_at and dcn_stages, up to C{last_stage} (4 for C4 models)."""
    dcn_stages = tuple(settings.get("dcn_stages", ()))
    if dcn_stages and max(dcn_stages) > last_stage:
        raise ValueError(f"dcn_stages {dcn_stages}: this detector's backbone ends at stage "
                         f"{last_stage} (a C4 model's res5 is its box head, built without "
                         "deformable convs)")
    return resnet(settings["depth"], settings["variant"], settings["groups"],
                  settings["group_width"], settings["norm"], settings["freeze_at"],
                  num_stages=last_stage - 1, dcn_stages=dcn_stages)

