"""YOLOv3's batch-level training augmentation (PaddleDetection's MixupImage and RandomShape,
applied to whole batches): mixup of each image with its neighbour in the batch, then one
random square input size per batch with a random interpolation method.

Per-image steps (distortion, expand, crop, flip, resize to the largest size) are SSD's
transforms (`ssd_transforms`); this runs after batching, as `batch_transform(batch, step)`.
"""
import dataclasses
from typing import Optional, Sequence

import tensorflow as tf

METHODS = ("bilinear", "nearest", "bicubic", "area")


def _beta(seed, alpha, shape):
    """Beta(alpha, alpha) from two stateless gammas."""
    s1, s2 = (tf.random.experimental.stateless_fold_in(seed, i) for i in (1, 2))
    a = tf.random.stateless_gamma(shape, s1, alpha)
    b = tf.random.stateless_gamma(shape, s2, alpha)
    return a / (a + b)


@dataclasses.dataclass(frozen=True)
class YoloBatchAugment:
    """mixup_until: mix images while step < mixup_until (the zoo switches mixup off for the
    last epochs); None for never. sizes: the input sizes to draw from per batch.

    Batches gain `scores` [B, 2M] (each box's mixup weight; 1 without mixup), and the box
    keys double to 2M entries (an image's own boxes, then its partner's, padding -1)."""

    sizes: Sequence[int] = tuple(range(320, 609, 32))
    mixup_until: Optional[int] = None
    mixup_alpha: float = 1.5
    seed: int = 0

    def __call__(self, batch, step):
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, 11], tf.int64), tf.cast(step, tf.int64))
        batch = self._mixup(batch, step, seed)
        return self._resize(batch, tf.random.experimental.stateless_fold_in(seed, 5))

    def _mixup(self, batch, step, seed):
        images = batch["images"]
        n = tf.shape(images)[0]
        on = tf.constant(False) if self.mixup_until is None else step < self.mixup_until
        lam = _beta(seed, self.mixup_alpha, [n])
        lam = tf.where(on, lam, tf.ones_like(lam))
        partner = {k: tf.roll(v, 1, axis=0) for k, v in batch.items()}
        out = dict(batch)
        out["images"] = (lam[:, None, None, None] * images
                         + (1 - lam[:, None, None, None]) * partner["images"])
        mixed = on & (lam < 1.0)
        pad = {"classes": -1}
        for key in ("boxes", "classes", "is_crowd", "difficult"):
            other = tf.where(tf.reshape(mixed, [-1] + [1] * (len(batch[key].shape) - 1)),
                             partner[key],
                             tf.fill(tf.shape(partner[key]), tf.cast(pad.get(key, 0),
                                                                     partner[key].dtype)))
            out[key] = tf.concat([batch[key], other], 1)
        own = tf.ones_like(batch["classes"], tf.float32) * lam[:, None]
        out["scores"] = tf.concat([own, (1 - own) * tf.cast(mixed[:, None], tf.float32)], 1)
        out["num_boxes"] = batch["num_boxes"] + tf.where(mixed, partner["num_boxes"], 0)
        return out

    def _resize(self, batch, seed):
        sizes = tf.constant(self.sizes, tf.int32)
        size = sizes[tf.random.stateless_uniform([], seed, 0, len(self.sizes), tf.int32)]
        method = tf.random.stateless_uniform(
            [], tf.random.experimental.stateless_fold_in(seed, 1), 0, len(METHODS), tf.int32)
        images = batch["images"]
        branches = [lambda m=m: tf.image.resize(images, tf.stack([size, size]), method=m)
                    for m in METHODS]
        out = dict(batch)
        out["images"] = tf.switch_case(method, branches)
        out["images"].set_shape([None, None, None, 3])
        factor = tf.cast(size, tf.float32) / tf.cast(tf.shape(images)[1:3], tf.float32)
        out["boxes"] = batch["boxes"] * tf.stack([factor[1], factor[0], factor[1], factor[0]])
        return out
