"""SSD's training augmentation (Liu et al. 2016; PaddleDetection's RandomDistort,
RandomExpand, RandomCrop), as `(sample, seed) -> sample` transforms on 0..255 RGB images.

Vectorised: the crop search draws all its candidate windows at once and picks the first one
that satisfies the first satisfiable IoU constraint, with no Python loop in the graph.
"""
import dataclasses
from typing import Sequence

import tensorflow as tf

from tfdet.data import transforms as T
from tfdet.ops import box_iou


def _uniform(seed, low, high, shape=()):
    return tf.random.stateless_uniform(shape, seed, low, high)


def _seeds(seed, n):
    return [tf.random.experimental.stateless_fold_in(seed, i) for i in range(n)]


@dataclasses.dataclass(frozen=True)
class PhotometricDistort:
    """In order, each with probability `prob`: brightness x U(0.875, 1.125), contrast
    x U(0.5, 1.5), saturation x U(0.5, 1.5), hue shift U(-18, 18) degrees."""

    brightness: Sequence[float] = (0.875, 1.125)
    contrast: Sequence[float] = (0.5, 1.5)
    saturation: Sequence[float] = (0.5, 1.5)
    hue_degrees: float = 18.0
    prob: float = 0.5

    def __call__(self, sample, seed):
        s = _seeds(seed, 8)
        image = sample["image"]

        def maybe(i, fn, x):
            return tf.cond(_uniform(s[2 * i], 0.0, 1.0) < self.prob, lambda: fn(x), lambda: x)

        image = maybe(0, lambda x: x * _uniform(s[1], *self.brightness), image)
        image = maybe(1, lambda x: tf.image.adjust_contrast(x, _uniform(s[3], *self.contrast)),
                      image)
        unit = tf.clip_by_value(image, 0.0, 255.0) / 255.0  # HSV ops want 0..1
        unit = maybe(2, lambda x: tf.image.adjust_saturation(
            x, _uniform(s[5], *self.saturation)), unit)
        unit = maybe(3, lambda x: tf.image.adjust_hue(
            x, _uniform(s[7], -self.hue_degrees, self.hue_degrees) / 360.0), unit)
        out = dict(sample)
        out["image"] = tf.clip_by_value(unit * 255.0, 0.0, 255.0)
        return out


@dataclasses.dataclass(frozen=True)
class RandomExpand:
    """With probability `prob`, places the image at a random position on a canvas
    U(1, max_ratio) times its size filled with `fill` (zoom out: small objects)."""

    max_ratio: float = 4.0
    prob: float = 0.5
    fill: Sequence[float] = (104.0, 117.0, 123.0)

    def __call__(self, sample, seed):
        s = _seeds(seed, 4)
        image, boxes = sample["image"], sample["boxes"]
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        ratio = _uniform(s[1], 1.0, self.max_ratio)
        new_h, new_w = tf.floor(h * ratio), tf.floor(w * ratio)
        top = tf.floor(_uniform(s[2], 0.0, 1.0) * (new_h - h + 1))
        left = tf.floor(_uniform(s[3], 0.0, 1.0) * (new_w - w + 1))
        fill = tf.constant(self.fill, tf.float32)

        def expand():
            pad = tf.cast(tf.stack([[top, new_h - h - top], [left, new_w - w - left]]),
                          tf.int32)
            canvas = tf.pad(image - fill, tf.concat([pad, [[0, 0]]], 0)) + fill
            return canvas, boxes + tf.stack([left, top, left, top])

        apply = _uniform(s[0], 0.0, 1.0) < self.prob
        out = dict(sample)
        out["image"], out["boxes"] = tf.cond(apply, expand, lambda: (image, boxes))
        return out


@dataclasses.dataclass(frozen=True)
class MinIoURandomCrop:
    """SSD's random crop. The constraints [no crop (if allow_no_crop), min IoU 0, 0.1, 0.3,
    0.5, 0.7, 0.9] are tried in a random order; for each, `attempts` windows of scale
    U(0.3, 1) and aspect ratio in [0.5, 2] (kept within the image) are drawn, and the first
    window whose IoU with some box reaches the constraint and that contains a box centre is
    taken. Boxes whose centres fall outside the window are dropped, the rest clipped to it.
    If nothing qualifies, the image is left whole."""

    min_ious: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
    scale: Sequence[float] = (0.3, 1.0)
    aspect_ratio: Sequence[float] = (0.5, 2.0)
    attempts: int = 50
    allow_no_crop: bool = True

    def __call__(self, sample, seed):
        s = _seeds(seed, 5)
        image, boxes = sample["image"], sample["boxes"]
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        n_c, n_a = len(self.min_ious), self.attempts
        scale = _uniform(s[0], *self.scale, shape=(n_c, n_a))
        low = tf.maximum(self.aspect_ratio[0], scale**2)
        high = tf.minimum(self.aspect_ratio[1], 1.0 / scale**2)
        ratio = low + _uniform(s[1], 0.0, 1.0, (n_c, n_a)) * (high - low)
        crop_h = h * scale / tf.sqrt(ratio)
        crop_w = w * scale * tf.sqrt(ratio)
        y1 = _uniform(s[2], 0.0, 1.0, (n_c, n_a)) * (h - crop_h)
        x1 = _uniform(s[3], 0.0, 1.0, (n_c, n_a)) * (w - crop_w)
        windows = tf.stack([x1, y1, x1 + crop_w, y1 + crop_h], -1)  # [C, A, 4]
        iou = box_iou(tf.reshape(windows, [-1, 4]), boxes)  # [C * A, M]
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2
        flat = tf.reshape(windows, [-1, 4])
        centre_in = ((cx[None] > flat[:, 0:1]) & (cx[None] < flat[:, 2:3])
                     & (cy[None] > flat[:, 1:2]) & (cy[None] < flat[:, 3:4]))  # [C * A, M]
        min_iou = tf.repeat(tf.constant(self.min_ious, tf.float32), n_a)
        good = (tf.reduce_any(iou >= min_iou[:, None], axis=1)
                & tf.reduce_any(centre_in, axis=1))
        good = tf.reshape(good, [n_c, n_a])
        # A random order of the constraints (plus "no crop"); the first satisfiable one wins.
        options = n_c + int(self.allow_no_crop)
        order = tf.argsort(_uniform(s[4], 0.0, 1.0, (options,)))
        satisfiable = tf.concat([tf.reduce_any(good, 1), tf.ones([options - n_c], tf.bool)], 0)
        ordered = tf.gather(satisfiable, order)
        first = tf.argmax(tf.cast(ordered, tf.int32), output_type=tf.int32)
        choice = order[first]
        do_crop = tf.reduce_any(ordered) & (choice < n_c)
        row = tf.minimum(choice, n_c - 1)
        attempt = tf.argmax(tf.cast(tf.gather(good, row), tf.int32), output_type=tf.int32)
        window = windows[row, attempt]
        keep = centre_in[row * n_a + attempt]
        return tf.cond(do_crop, lambda: _crop(sample, window, keep), lambda: sample)


def _crop(sample, window, keep):
    """The sample cut to window [4] xyxy (rounded to pixels); boxes kept where `keep`."""
    x1, y1 = tf.floor(window[0]), tf.floor(window[1])
    x2, y2 = tf.math.ceil(window[2]), tf.math.ceil(window[3])
    out = dict(sample)
    out["image"] = sample["image"][tf.cast(y1, tf.int32):tf.cast(y2, tf.int32),
                                   tf.cast(x1, tf.int32):tf.cast(x2, tf.int32)]
    boxes = tf.boolean_mask(sample["boxes"], keep) - tf.stack([x1, y1, x1, y1])
    out["boxes"] = tf.clip_by_value(boxes, 0.0, tf.stack([x2 - x1, y2 - y1, x2 - x1, y2 - y1]))
    for key in ("classes", "is_crowd", "difficult"):
        out[key] = tf.boolean_mask(sample[key], keep)
    return out


def ssd_transforms(training, size=300, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0),
                   flip_prob=0.5, allow_no_crop=True, distort=True):
    """SSD's recipe: when training, photometric distortion, expand (filled with the mean),
    min-IoU crop (these three only with `distort`) and flip; always a square resize to
    size x size and (x - mean) / std."""
    steps = []
    if training and distort:
        steps += [PhotometricDistort(), RandomExpand(fill=tuple(mean)),
                  MinIoURandomCrop(allow_no_crop=allow_no_crop)]
    if training and flip_prob > 0:
        steps.append(T.RandomHorizontalFlip(flip_prob))
    steps += [T.ResizeSquare(size), T.Normalize(tuple(mean), tuple(std))]
    return T.Compose(steps)
