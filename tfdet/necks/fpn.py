"""Feature Pyramid Network (Lin et al. 2017) on C-level features.

Laterals: 1x1 conv of C_l to `channels`; top-down: nearest upsampling of the coarser merged
map, added; outputs: 3x3 conv. Extra levels above the backbone's last:
  extra="conv_c5"  P6 = 3x3/2 conv of C5, P7 = 3x3/2 conv of ReLU(P6)   (static-zoo RetinaNet)
  extra="conv_p5"  the same from P5                       (ppdet 2.x / torchvision RetinaNet)
  extra="pool"     P6 = 1x1/2 max pool of P5                              (Faster / Mask R-CNN)
The strided convs pad one pixel on every side (Paddle's padding=1), so P6 / P7 sample the
same positions as Paddle's on even-sized maps.
"""
import keras
import tensorflow as tf

from tfdet.layers.conv_block import conv_norm_act, initializer
from tfdet.registry import NECKS


@keras.saving.register_keras_serializable("tfdet")
class ResizeLike(keras.layers.Layer):
    """2x nearest-neighbour upsampling of x, cropped to the spatial size of `like`.

    In an FPN `like` is the next finer level (size 2n or 2n - 1 from n), where this equals
    torchvision's / detectron2's nearest interpolation to that size. Built by broadcasting: cheaper than ResizeNearestNeighbor and its
    gradient compiles with XLA on every device.
    """

    def call(self, x, like):
        shape = tf.shape(x)
        up = tf.broadcast_to(x[:, :, None, :, None, :],
                             [shape[0], shape[1], 2, shape[2], 2, shape[3]])
        up = tf.reshape(up, [shape[0], shape[1] * 2, shape[2] * 2, shape[3]])
        target = tf.shape(like)
        return up[:, :target[1], :target[2]]


def fpn(features, min_level=3, max_level=7, channels=256, extra="conv_c5", norm=None,
        name="fpn"):
    """features: [C2, C3, C4, C5] (strides 4..32) -> [P_min_level, ..., P_max_level].

    norm: None, or 'gn' for GroupNorm after each conv (the GN rows).
    """
    if extra not in ("conv_c5", "conv_p5", "pool"):
        raise ValueError(f"fpn: unknown extra-level mode {extra!r}")
    by_level = {level: f for level, f in zip(range(2, 6), features)}
    backbone_max = 5
    init = initializer("GlorotUniform")

    def conv(x, kernel, stride, layer_name):
        # Strided: pad 1 on every side as Paddle / PyTorch do ('same' pads 0 / 1 here).
        return conv_norm_act(x, channels, kernel, stride, norm=norm, act=None,
                             kernel_initializer=init, conv_name=f"{name}_{layer_name}",
                             norm_name=f"{name}_{layer_name}_gn",
                             pad_name=f"{name}_{layer_name}_pad")

    merged = {}
    top = min(max_level, backbone_max)
    for level in range(top, min_level - 1, -1):
        lateral = conv(by_level[level], 1, 1, f"lateral{level}")
        if level < top:
            lateral = keras.layers.Add(name=f"{name}_merge{level}")(
                [lateral, ResizeLike(name=f"{name}_up{level}")(merged[level + 1], lateral)])
        merged[level] = lateral
    outputs = {level: conv(merged[level], 3, 1, f"output{level}")
               for level in range(min_level, top + 1)}
    for level in range(backbone_max + 1, max_level + 1):
        if extra == "pool":
            outputs[level] = keras.layers.MaxPooling2D(1, 2, name=f"{name}_pool{level}")(
                outputs[level - 1])
        else:
            source = by_level[5] if extra == "conv_c5" and level == 6 else outputs[level - 1]
            if level > 6:
                source = keras.layers.ReLU(name=f"{name}_relu{level}")(source)
            outputs[level] = conv(source, 3, 2, f"extra{level}")
    return [outputs[level] for level in range(min_level, max_level + 1)]


@NECKS.register("fpn")
class FPNNeck:
    """The registered 'fpn' neck: fpn() on C2-C5 with the detector's fpn_channels, fpn_norm
    and, where its settings have them, min_level / max_level / fpn_extra (RetinaNet's P3-P7);
    otherwise the two-stage layout, P2-P6 with a max-pooled P6. RoIs pool from P2-P5."""

    last_stage = 5
    box_head = "fc"

    def __init__(self, settings):
        self.min_level = settings.get("min_level", 2)
        self.max_level = settings.get("max_level", 6)
        self.channels = settings["fpn_channels"]
        self.extra = settings.get("fpn_extra", "pool")
        self.norm = settings.get("fpn_norm")

    @property
    def strides(self):
        return tuple(2**level for level in range(self.min_level, self.max_level + 1))

    @property
    def roi_strides(self):
        return tuple(s for s in self.strides if s <= 32)

    def __call__(self, features):
        return fpn(features, self.min_level, self.max_level, self.channels, self.extra,
                   norm=self.norm)

