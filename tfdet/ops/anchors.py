"""Multi-level anchor generation.

Anchors are xyxy pixels of the (padded) network input. For each level, each feature-map cell
(y, x) has A = len(scales) * len(ratios) anchors centred at ((x + offset) * stride,
(y + offset) * stride); the anchors of a cell are ordered ratio-major, scale-minor (as in
PaddleDetection and mmdetection), and cells row-major, so level l yields [H_l * W_l * A, 4].
"""
import dataclasses
import math
from typing import Sequence

import numpy as np
import tensorflow as tf


def cell_anchors(size, scales, ratios):
    """Anchors of one cell centred at 0: [len(ratios) * len(scales), 4] xyxy (numpy float32).

    `ratios` are height / width; an anchor of size s, scale k and ratio r has area (s k)^2.
    """
    out = []
    for ratio in ratios:
        for scale in scales:
            area = (size * scale) ** 2
            w = math.sqrt(area / ratio)
            h = w * ratio
            out.append([-w / 2, -h / 2, w / 2, h / 2])
    return np.asarray(out, np.float32).reshape(-1, 4)


@dataclasses.dataclass(frozen=True)
class AnchorGenerator:
    """Anchor layout of a detector: one stride and one base size per pyramid level.

    strides: e.g. (8, 16, 32, 64, 128) for P3-P7. sizes: base size per level, e.g.
    (32, 64, 128, 256, 512). scales: octave scales within a level, e.g. (1, 2**(1/3), 2**(2/3)).
    ratios: height / width. offset: cell-centre offset in strides (0.5 = centre of the cell).
    """

    strides: Sequence[int]
    sizes: Sequence[float]
    scales: Sequence[float] = (1.0,)
    ratios: Sequence[float] = (0.5, 1.0, 2.0)
    offset: float = 0.0

    def __post_init__(self):
        if len(self.strides) != len(self.sizes):
            raise ValueError(
                f"AnchorGenerator: {len(self.strides)} strides but {len(self.sizes)} sizes"
            )

    @property
    def num_anchors_per_location(self):
        return len(self.scales) * len(self.ratios)

    def feature_shapes(self, image_height, image_width):
        """Feature-map size of each level for an input of the given size: ceil(size / stride)."""
        h = tf.cast(image_height, tf.int32)
        w = tf.cast(image_width, tf.int32)
        return [((h + s - 1) // s, (w + s - 1) // s) for s in self.strides]

    def level_anchors(self, level, height, width):
        """Anchors of one level with an H x W feature map -> [H * W * A, 4] float32."""
        stride = float(self.strides[level])
        base = tf.constant(cell_anchors(self.sizes[level], self.scales, self.ratios))
        xs = (tf.cast(tf.range(width), tf.float32) + self.offset) * stride
        ys = (tf.cast(tf.range(height), tf.float32) + self.offset) * stride
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")
        centres = tf.stack([cx, cy, cx, cy], axis=-1)  # [H, W, 4]
        anchors = centres[:, :, None, :] + base[None, None, :, :]
        return tf.reshape(anchors, [-1, 4])

    def __call__(self, image_height, image_width, feature_shapes=None):
        """All levels' anchors concatenated -> ([sum_l H_l W_l A, 4], list of per-level counts).

        feature_shapes: optional [(H_l, W_l)] from the network; by default ceil(input / stride).
        """
        shapes = feature_shapes or self.feature_shapes(image_height, image_width)
        per_level = [self.level_anchors(i, h, w) for i, (h, w) in enumerate(shapes)]
        counts = [tf.shape(a)[0] for a in per_level]
        return tf.concat(per_level, axis=0), counts


def retinanet_anchor_generator(min_level=3, max_level=7, base_size=4, num_scales=3,
                               ratios=(0.5, 1.0, 2.0), offset=0.0):
    """The RetinaNet layout: size = base_size * stride at each level, scales 2^(i / num_scales)."""
    strides = [2**level for level in range(min_level, max_level + 1)]
    return AnchorGenerator(
        strides=tuple(strides),
        sizes=tuple(float(base_size * s) for s in strides),
        scales=tuple(2 ** (i / num_scales) for i in range(num_scales)),
        ratios=tuple(ratios),
        offset=offset,
    )


def rcnn_anchor_generator(strides, sizes, ratios=(0.5, 1.0, 2.0)):
    """The two-stage layouts: one size per level when there are as many strides as sizes (FPN
    P2-P6), or every size at a single level (C4: sizes as scales of the first)."""
    strides, sizes = tuple(strides), tuple(float(s) for s in sizes)
    if len(strides) == len(sizes):
        return AnchorGenerator(strides=strides, sizes=sizes, scales=(1.0,),
                               ratios=tuple(ratios))
    if len(strides) == 1:
        return AnchorGenerator(strides=strides, sizes=sizes[:1],
                               scales=tuple(s / sizes[0] for s in sizes), ratios=tuple(ratios))
    raise ValueError(f"anchors: {len(sizes)} anchor sizes for {len(strides)} levels; give one "
                     "per level, or one level with every size")
