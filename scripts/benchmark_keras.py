"""Times a zoo model's Keras forward pass + post-processing (tf.function, batch 1, random input).

  python scripts/benchmark_keras.py --model retinanet_r50_fpn --sizes 512x512,768x1280
This is the in-process model only: no file reading or decoding. The deployment figure is
scripts/benchmark.py on the exported SavedModel.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import tfdet  # noqa: E402

flags.DEFINE_string("model", "retinanet_r50_fpn", "zoo name")
flags.DEFINE_string("sizes", "512x512", "comma-separated HxW input sizes")
flags.DEFINE_integer("runs", 10, "timed runs per size (after 3 warm-up runs)")


def main(_):
    f = flags.FLAGS
    model = tfdet.models.get(f.model)
    forward = tf.function(lambda x: model(x, training=False))
    for size in f.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        x = tf.random.normal([1, h, w, 3])
        for _ in range(3):
            forward(x)["num_detections"].numpy()
        times = []
        for _ in range(f.runs):
            start = time.perf_counter()
            forward(x)["num_detections"].numpy()
            times.append(time.perf_counter() - start)
        print(f"{model.name} Keras tf.function batch 1 {h}x{w}: median "
              f"{np.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms over {f.runs} "
              f"runs ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    app.run(main)
