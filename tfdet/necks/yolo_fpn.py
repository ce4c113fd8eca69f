"""YOLOv3's neck: from C5 down, a detection block per level (1x1 / 3x3 conv pairs, then the
'route' 1x1 and the 'tip' 3x3), the route reduced by a 1x1 conv, upsampled 2x and
concatenated with the next finer backbone level."""
import keras

from tfdet.backbones.darknet import conv_norm_leaky


def yolo_fpn(features, norm="bn", conv_blocks=2, name="yolo"):
    """features [C3, C4, C5] -> the tips [T5, T4, T3] (coarse to fine; 1024, 512, 256
    channels), each ready for a 1x1 output conv."""
    tips, route = [], None
    levels = features[::-1]
    for i, x in enumerate(levels):
        if route is not None:
            x = keras.layers.Concatenate(name=f"{name}_concat{i}")([route, x])
        channels = 512 // 2**i
        for j in range(conv_blocks):
            x = conv_norm_leaky(x, channels, 1, 1, norm, f"{name}_block{i}_{j}_a")
            x = conv_norm_leaky(x, channels * 2, 3, 1, norm, f"{name}_block{i}_{j}_b")
        route = conv_norm_leaky(x, channels, 1, 1, norm, f"{name}_block{i}_route")
        tips.append(conv_norm_leaky(route, channels * 2, 3, 1, norm, f"{name}_block{i}_tip"))
        if i < len(levels) - 1:
            route = conv_norm_leaky(route, 256 // 2**i, 1, 1, norm, f"{name}_transition{i}")
            route = keras.layers.UpSampling2D(2, interpolation="nearest",
                                              name=f"{name}_upsample{i}")(route)
    return tips
