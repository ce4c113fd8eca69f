"""Times FPN RoIAlign (ops.RoIPooler, P2-P5 of 256 channels, 7 x 7 bins, sampling ratio 2)
by each computation: forward as at inference, and forward + backward as in training.

  python scripts/benchmark_roi_align.py --sizes 512x512,800x1216 --rois 1000 \\
      [--train_batch 2 --train_rois 512] [--methods crop,gather]
Random maps and boxes (log-uniform sides of 8-600 px, so every level gets RoIs), a
tf.function, median of --runs after 3 warm-up runs, minor page faults per run.
"""
import os
import resource

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from paddle_latency import time_runs  # noqa: E402  (scripts/: the timing loop)
from tfdet import ops  # noqa: E402

flags.DEFINE_string("sizes", "512x512,800x1216", "comma-separated HxW image sizes")
flags.DEFINE_integer("rois", 1000, "RoIs per image at inference (batch 1)")
flags.DEFINE_integer("train_batch", 2, "images per training batch (0: skip the backward)")
flags.DEFINE_integer("train_rois", 512, "RoIs per image in training")
flags.DEFINE_string("methods", "crop,gather", "ops.roi_align methods to time")
flags.DEFINE_integer("runs", 10, "timed runs")


def case(batch, h, w, rois, seed=0):
    rng = np.random.default_rng(seed)
    maps = [tf.constant(rng.normal(size=(batch, -(-h // s), -(-w // s), 256)), tf.float32)
            for s in (4, 8, 16, 32)]
    xy = rng.uniform(0, [w, h], (batch, rois, 2))
    wh = np.exp(rng.uniform(np.log(8), np.log(600), (batch, rois, 2)))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], -1)
    return maps, tf.constant(boxes, tf.float32)


def timed(fn, runs):
    """Median ms of `runs` calls after 3 warm-up calls (the scripts' time_runs), and the
    minor page faults per timed call."""
    call = lambda: tf.nest.map_structure(lambda t: t.numpy(), fn())  # noqa: E731
    for _ in range(3):
        call()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    median, _ = time_runs(call, 0, runs)
    return median, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / runs


def main(_):
    f = flags.FLAGS
    for size in f.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        for method in f.methods.split(","):
            pooler = ops.RoIPooler(7, (4, 8, 16, 32), 2, method=method)
            maps, boxes = case(1, h, w, f.rois)
            forward = tf.function(lambda m, b: tf.reduce_sum(pooler(m, b)))
            ms, faults = timed(lambda: forward(maps, boxes), f.runs)
            line = f"{size} {method}: forward {f.rois} RoIs {ms:.1f} ms ({faults:.0f} faults)"
            if f.train_batch:
                maps, boxes = case(f.train_batch, h, w, f.train_rois)

                @tf.function
                def step(m, b):
                    with tf.GradientTape() as tape:
                        tape.watch(m)
                        value = tf.reduce_sum(pooler(m, b) ** 2)
                    return tape.gradient(value, m)

                ms, _ = timed(lambda: step(maps, boxes), f.runs)
                line += (f"; forward + backward {f.train_batch} x {f.train_rois} RoIs "
                         f"{ms:.1f} ms")
            print(line, flush=True)


if __name__ == "__main__":
    app.run(main)
