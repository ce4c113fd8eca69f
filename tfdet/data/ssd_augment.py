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


def _keep_boxes(sample, keep, boxes):
    """The sample with only the boxes where `keep` [M], their coordinates `boxes` [K, 4]."""
    out = dict(sample)
    out["boxes"] = boxes
    for key in ("classes", "is_crowd", "difficult"):
        out[key] = tf.boolean_mask(sample[key], keep)
    return out


def _survivors(boxes, window, target_size, min_size):
    """ppdet's filter_and_process then bbox_area_sampling, for one window [4] xyxy pixels:
    boxes whose centre lies in the window (edges included) and that overlap it, clipped to
    it, and at least min_size^2 in area once the window is scaled to target_size (per side).
    Returns (keep [M], the kept boxes relative to the window [M, 4])."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    inside = (cx >= window[0]) & (cx <= window[2]) & (cy >= window[1]) & (cy <= window[3])
    overlap = ((boxes[:, 0] < window[2]) & (boxes[:, 2] > window[0])
               & (boxes[:, 1] < window[3]) & (boxes[:, 3] > window[1]))
    size = tf.stack([window[2] - window[0], window[3] - window[1]] * 2)
    relative = tf.clip_by_value(boxes - tf.tile(window[:2], [2]), 0.0, size)
    w = (relative[:, 2] - relative[:, 0]) / size[0] * target_size
    h = (relative[:, 3] - relative[:, 1]) / size[1] * target_size
    keep = inside & overlap & (w * h > 0) & (w * h >= min_size * min_size)
    return keep, relative


def _coverage(boxes, windows):
    """Intersection over each box's own area: windows [T, 4] x boxes [M, 4] -> [T, M]."""
    lt = tf.maximum(windows[:, None, :2], boxes[None, :, :2])
    rb = tf.minimum(windows[:, None, 2:], boxes[None, :, 2:])
    inter = tf.reduce_prod(tf.maximum(rb - lt, 0.0), axis=-1)
    area = tf.reduce_prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    return tf.math.divide_no_nan(inter, area[None])


@dataclasses.dataclass(frozen=True)
class DataAnchorSamplingCrop:
    """The face detectors' crop (ppdet's CropWithDataAchorSampling, PyramidBox's
    data-anchor-sampling), on 0..255 images with pixel xyxy boxes.

    With probability 1 - sampling_prob, data-anchor-sampling: up to `anchor_trials` draws of
    a random face, of an anchor scale s_r (r uniform in 0..R, R the face's size class among
    anchor_scales as ppdet's data_anchor_sampling computes it) and of a target face width
    U(s_r / 2, 2 s_r) (capped at twice the face's sqrt(area) for r = R); the square window
    that gives the face that width at target_size x target_size is placed at random around
    the face (anywhere over the image when larger than it, zero-filled outside), and the
    first window covering at least anchor_min_coverage of some face is cut and resized to
    target_size (bilinear, where ppdet uses cv2's area interpolation). Otherwise, square
    windows of side U(lo, hi) x the image's short side, one per (lo, hi) in square_scales,
    the first of square_trials draws that holds a whole face, one of them taken at random.
    Either way faces whose centre leaves the window are dropped, the rest clipped, and faces
    under min_size^2 px at target_size dropped; a window left without faces is not used,
    and with none the sample is left whole."""

    target_size: int = 640
    anchor_scales: Sequence[float] = (16.0, 32.0, 64.0, 128.0)
    sampling_prob: float = 0.5
    anchor_trials: int = 10
    anchor_min_coverage: float = 0.2
    square_scales: Sequence[Sequence[float]] = ((1.0, 1.0),) + ((0.3, 1.0),) * 4
    square_trials: int = 50
    min_size: float = 8.0

    def __call__(self, sample, seed):
        s = _seeds(seed, 3)
        boxes = sample["boxes"]
        has_boxes = tf.shape(boxes)[0] > 0
        anchor = _uniform(s[0], 0.0, 1.0) > self.sampling_prob
        return tf.cond(has_boxes & anchor, lambda: self._anchor_crop(sample, s[1]),
                       lambda: tf.cond(has_boxes, lambda: self._square_crop(sample, s[2]),
                                       lambda: sample))

    def _anchor_window(self, boxes, h, w, seed):
        """[T, 4] candidate windows (pixels) of data_anchor_sampling."""
        s = _seeds(seed, 5)
        t = self.anchor_trials
        scales = tf.constant(self.anchor_scales, tf.float32)
        n = len(self.anchor_scales)
        m = tf.shape(boxes)[0]
        face = tf.gather(boxes, tf.minimum(tf.cast(
            _uniform(s[0], 0.0, 1.0, (t,)) * tf.cast(m, tf.float32), tf.int32), m - 1))
        wid, hei = face[:, 2] - face[:, 0], face[:, 3] - face[:, 1]
        area = wid * hei
        # ppdet: the first i with s_i^2 < area < s_(i+1)^2 gives R = i + 1; area above
        # s_(n-2)^2 gives R = n - 2; else 0.
        sq = scales ** 2
        between = (area[:, None] > sq[None, :-1]) & (area[:, None] < sq[None, 1:])
        r_max = tf.reduce_sum(tf.cast(between, tf.int32) * tf.range(1, n)[None], axis=1)
        r_max = tf.where(area > sq[n - 2], n - 2, r_max)
        r = tf.minimum(tf.cast(_uniform(s[1], 0.0, 1.0, (t,))
                               * tf.cast(r_max + 1, tf.float32), tf.int32), r_max)
        s_r = tf.gather(scales, r)
        high = tf.where(r == r_max, tf.minimum(2 * s_r, 2 * tf.sqrt(area)), 2 * s_r)
        low = s_r / 2
        chosen = low + _uniform(s[2], 0.0, 1.0, (t,)) * (high - low)
        size = wid * self.target_size / chosen
        small = size < tf.maximum(h, w)
        u, v = _uniform(s[3], 0.0, 1.0, (t,)), _uniform(s[4], 0.0, 1.0, (t,))
        x0 = tf.where(small, face[:, 0] + u * (wid - size), (w - size) * u)
        y0 = tf.where(small, face[:, 1] + v * (hei - size), (h - size) * v)
        x0, y0 = tf.floor(x0), tf.floor(y0)
        return tf.stack([x0, y0, x0 + size, y0 + size], -1)

    def _anchor_crop(self, sample, seed):
        image, boxes = sample["image"], sample["boxes"]
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        windows = self._anchor_window(boxes, h, w, seed)
        good = tf.reduce_any(_coverage(boxes, windows) >= self.anchor_min_coverage, axis=1)
        window = windows[tf.argmax(tf.cast(good, tf.int32), output_type=tf.int32)]
        keep, relative = _survivors(boxes, window, self.target_size, self.min_size)
        use = tf.reduce_any(good) & tf.reduce_any(keep)

        def crop():
            size = window[2] - window[0]
            t = float(self.target_size)
            # Output pixel i samples the window at x0 + (i + 0.5) size / t (pixel centres).
            y1 = window[1] + 0.5 * size / t - 0.5
            x1 = window[0] + 0.5 * size / t - 0.5
            span = size * (t - 1) / t
            norm = tf.stack([tf.maximum(h - 1, 1.0), tf.maximum(w - 1, 1.0)] * 2)
            box = tf.stack([y1, x1, y1 + span, x1 + span]) / norm
            out = tf.image.crop_and_resize(image[None], box[None], [0],
                                           [self.target_size, self.target_size])[0]
            cropped = _keep_boxes(sample, keep, tf.boolean_mask(relative, keep) * (t / size))
            cropped["image"] = out
            return cropped
        return tf.cond(use, crop, lambda: sample)

    def _square_crop(self, sample, seed):
        image, boxes = sample["image"], sample["boxes"]
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        s = _seeds(seed, 4)
        k, t = len(self.square_scales), self.square_trials
        lo = tf.constant([a for a, _ in self.square_scales], tf.float32)[:, None]
        hi = tf.constant([b for _, b in self.square_scales], tf.float32)[:, None]
        side = (lo + _uniform(s[0], 0.0, 1.0, (k, t)) * (hi - lo)) * tf.minimum(h, w)
        x0 = _uniform(s[1], 0.0, 1.0, (k, t)) * (w - side)
        y0 = _uniform(s[2], 0.0, 1.0, (k, t)) * (h - side)
        windows = tf.stack([x0, y0, x0 + side, y0 + side], -1)  # [K, T, 4]
        whole = tf.reduce_any(
            _coverage(boxes, tf.reshape(windows, [-1, 4])) >= 1.0 - 1e-6, axis=1)
        whole = tf.reshape(whole, [k, t])
        # Each sampler's first window holding a whole face (if any).
        chosen = tf.gather(windows, tf.argmax(tf.cast(whole, tf.int32), axis=1,
                                              output_type=tf.int32), batch_dims=1)  # [K, 4]
        keeps, relatives = tf.map_fn(
            lambda win: _survivors(boxes, win, self.target_size, self.min_size), chosen,
            fn_output_signature=(tf.bool, tf.float32))
        usable = tf.reduce_any(whole, axis=1) & tf.reduce_any(keeps, axis=1)  # [K]
        # One of the usable windows at random (ppdet pops random ones until one keeps faces).
        rank = tf.where(usable, _uniform(s[3], 0.0, 1.0, (k,)), -1.0)
        pick = tf.argmax(rank, output_type=tf.int32)

        def crop():
            window = chosen[pick]
            x1, y1 = tf.floor(window[0]), tf.floor(window[1])
            x2, y2 = tf.floor(window[2]), tf.floor(window[3])
            out = _keep_boxes(sample, keeps[pick], tf.boolean_mask(relatives[pick], keeps[pick])
                              * tf.stack([(x2 - x1) / (window[2] - window[0]),
                                          (y2 - y1) / (window[3] - window[1])] * 2))
            out["image"] = image[tf.cast(y1, tf.int32):tf.cast(y2, tf.int32),
                                 tf.cast(x1, tf.int32):tf.cast(x2, tf.int32)]
            return out
        return tf.cond(tf.reduce_any(usable), crop, lambda: sample)


def ssd_transforms(training, size=300, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0),
                   flip_prob=0.5, allow_no_crop=True, distort=True, crop="min_iou"):
    """SSD's recipe: when training, photometric distortion, expand (filled with the mean),
    a crop (these three only with `distort`; crop 'min_iou': SSD's MinIoURandomCrop,
    'data_anchor': the face detectors' DataAnchorSamplingCrop at `size`) and flip; always a
    square resize to size x size and (x - mean) / std."""
    if crop not in ("min_iou", "data_anchor"):
        raise ValueError(f"crop must be 'min_iou' or 'data_anchor', got {crop!r}")
    steps = []
    if training and distort:
        steps += [PhotometricDistort(), RandomExpand(fill=tuple(mean)),
                  MinIoURandomCrop(allow_no_crop=allow_no_crop) if crop == "min_iou"
                  else DataAnchorSamplingCrop(target_size=size)]
    if training and flip_prob > 0:
        steps.append(T.RandomHorizontalFlip(flip_prob))
    steps += [T.ResizeSquare(size), T.Normalize(tuple(mean), tuple(std))]
    return T.Compose(steps)
