"""Composable per-image transforms for `tf.data` (graph mode, stateless random ops).

A transform is a callable `(sample, seed) -> sample`. `sample` is a dict:
  image [H, W, 3] float32 RGB in 0..255 (until Normalize), boxes [N, 4] float32 xyxy pixels of
  the current image, classes [N] int32, is_crowd [N] bool, difficult [N] bool,
  original_size [2] int32 (h, w of the file), scale [2] float32 (y, x factors from the
  original to the current image), optionally masks [N, H, W] uint8 instance masks (Mask
  R-CNN; resized and flipped with the image), plus pass-through keys such as image_id.
`seed` is a shape-[2] int tensor; the same seed gives the same result, so a pipeline is
deterministic when seeded, whatever the parallelism.
"""
import dataclasses
from typing import Sequence, Union

import tensorflow as tf

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0..255
IMAGENET_STD = (58.395, 57.12, 57.375)


def _rescale(sample, new_h, new_w, method):
    h = tf.cast(tf.shape(sample["image"])[0], tf.float32)
    w = tf.cast(tf.shape(sample["image"])[1], tf.float32)
    sy, sx = tf.cast(new_h, tf.float32) / h, tf.cast(new_w, tf.float32) / w
    out = dict(sample)
    out["image"] = tf.image.resize(sample["image"], tf.stack([new_h, new_w]), method=method)
    out["boxes"] = sample["boxes"] * tf.stack([sx, sy, sx, sy])
    out["scale"] = sample["scale"] * tf.stack([sy, sx])
    if "masks" in sample:
        out["masks"] = resize_masks(sample["masks"], new_h, new_w)
    return out


def resize_masks(masks, height, width):
    """[N, h, w] uint8 0 / 1 masks -> [N, height, width], bilinear then thresholded at 0.5."""
    n = tf.shape(masks)[0]
    # One spare channel: the resize op refuses an image with no channels (no instances).
    channels_last = tf.pad(tf.transpose(tf.cast(masks, tf.float32), [1, 2, 0]),
                           [[0, 0], [0, 0], [0, 1]])
    resized = tf.image.resize(channels_last, tf.stack([height, width]), method="bilinear")
    return tf.cast(tf.transpose(resized[..., :n], [2, 0, 1]) >= 0.5, tf.uint8)


def _pick(options, seed):
    """A random element of a tuple of ints (deterministic for the seed)."""
    options = tf.constant(options)
    i = tf.random.stateless_uniform([], seed, 0, tf.shape(options)[0], dtype=tf.int32)
    return options[i]


@dataclasses.dataclass(frozen=True)
class ResizeKeepAspect:
    """Scales so the shorter side is `short` (one of them at random if a tuple: multi-scale
    training) unless the longer side would exceed `max_long` (Detectron's 800 / 1333)."""

    short: Union[int, Sequence[int]] = 800
    max_long: int = 1333
    method: str = "bilinear"

    def __call__(self, sample, seed):
        short = self.short
        short = _pick(tuple(short), seed) if isinstance(short, (tuple, list)) else short
        short = tf.cast(short, tf.float32)
        h = tf.cast(tf.shape(sample["image"])[0], tf.float32)
        w = tf.cast(tf.shape(sample["image"])[1], tf.float32)
        scale = tf.minimum(short / tf.minimum(h, w), self.max_long / tf.maximum(h, w))
        # At least one pixel a side: a 1x5000 strip would otherwise round to height 0.
        new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), 1)
        new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), 1)
        return _rescale(sample, new_h, new_w, self.method)


@dataclasses.dataclass(frozen=True)
class ResizeSquare:
    """Resizes to size x size without keeping the aspect ratio (SSD, YOLO)."""

    size: int
    method: str = "bilinear"

    def __call__(self, sample, seed):
        return _rescale(sample, self.size, self.size, self.method)


@dataclasses.dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirrors the image and its boxes with probability `prob`."""

    prob: float = 0.5

    def __call__(self, sample, seed):
        flip = tf.random.stateless_uniform([], seed) < self.prob
        w = tf.cast(tf.shape(sample["image"])[1], tf.float32)
        x1, y1, x2, y2 = tf.unstack(sample["boxes"], axis=-1)
        flipped_boxes = tf.stack([w - x2, y1, w - x1, y2], axis=-1)
        out = dict(sample)
        out["image"] = tf.cond(flip, lambda: tf.reverse(sample["image"], [1]),
                               lambda: sample["image"])
        out["boxes"] = tf.where(flip, flipped_boxes, sample["boxes"])
        if "masks" in sample:
            out["masks"] = tf.cond(flip, lambda: tf.reverse(sample["masks"], [2]),
                                   lambda: sample["masks"])
        return out


@dataclasses.dataclass(frozen=True)
class Normalize:
    """(image - mean) / std per RGB channel, in 0..255 units."""

    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    def __call__(self, sample, seed):
        out = dict(sample)
        out["image"] = (sample["image"] - tf.constant(self.mean, tf.float32)) / tf.constant(
            self.std, tf.float32)
        return out


@dataclasses.dataclass(frozen=True)
class Compose:
    """Applies transforms in order, each with its own seed folded from the given one."""

    transforms: Sequence

    def __call__(self, sample, seed):
        for i, transform in enumerate(self.transforms):
            sample = transform(sample, tf.random.experimental.stateless_fold_in(seed, i))
        return sample


def detection_transforms(training, short=800, max_long=1333, flip_prob=0.5, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD):
    """The R-CNN / RetinaNet recipe: resize keeping aspect, flip when training, normalise."""
    steps = [ResizeKeepAspect(short, max_long)]
    if training and flip_prob > 0:
        steps.append(RandomHorizontalFlip(flip_prob))
    steps.append(Normalize(mean, std))
    return Compose(steps)
