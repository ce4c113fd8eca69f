"""One convolution (+ bias + ReLU) at a time, as a frozen export runs it: TensorFlow's oneDNN
conv with a constant filter (so oneDNN keeps its reordered kernel), batch 1, NHWC float32.
Prints the median time and GFLOP/s per shape; `bench/peer_conv.py` times the same shapes in
ONNX Runtime and torch (issue 14: where RetinaNet's network time goes against ONNX Runtime).

  python scripts/benchmark_conv.py [--threads 2] [--shapes 64x256x256x3,...] [--runs 30]
      [--json OUT.json]

A shape is PIXELSxIN_CHANNELSxOUT_CHANNELSxKERNEL (square input of PIXELS x PIXELS, stride 1,
SAME padding). The defaults are RetinaNet R50-FPN's costliest convs at 512 x 512.
The module imports no absl or TensorFlow at load, so bench/peer_conv.py (the peers' venv)
shares its shapes and FLOP count.
"""
import json
import os
import platform

from paddle_latency import time_runs  # the scripts' timing loop

RETINANET_512 = "64x256x256x3,32x256x256x3,64x256x720x3,64x128x128x3,16x512x512x3,32x1024x256x1,64x512x128x1"


def parse_shapes(text):
    """'64x256x256x3,...' -> [(pixels, cin, cout, kernel), ...]; a clear error otherwise."""
    out = []
    for item in text.split(","):
        parts = item.strip().split("x")
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"--shapes: {item!r} is not PIXELSxINxOUTxKERNEL of positive integers")
        out.append(tuple(int(p) for p in parts))
    return out


def conv_flops(pixels, cin, cout, kernel):
    """Multiply-adds x 2 of one stride-1 SAME conv on a PIXELS x PIXELS input."""
    return 2 * pixels * pixels * cin * cout * kernel * kernel


def frozen_conv(tf, w_np, b_np):
    """conv + bias + ReLU with the weights as constants inside the graph, as in a frozen
    SavedModel: oneDNN caches the filter's blocked layout (a captured tensor would be an
    input, reordered at every call)."""
    @tf.function
    def conv(x):
        y = tf.nn.conv2d(x, tf.constant(w_np), 1, "SAME")
        return tf.nn.relu(tf.nn.bias_add(y, tf.constant(b_np)))
    return conv


def main(_):
    import numpy as np
    from absl import flags

    import tfdet  # noqa: F401  (first: tfdet's runtime defaults, oneDNN on every x86-64 CPU)
    import tensorflow as tf

    f = flags.FLAGS
    if f.threads:
        tf.config.threading.set_intra_op_parallelism_threads(f.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    for pixels, cin, cout, k in parse_shapes(f.shapes):
        x = tf.constant(rng.random((1, pixels, pixels, cin), np.float32))
        w_np = (rng.random((k, k, cin, cout), np.float32) * 0.01)
        b_np = rng.random(cout, np.float32)
        conv = frozen_conv(tf, w_np, b_np)
        ms, _ = time_runs(lambda: conv(x).numpy(), f.warmup, f.runs)
        gflops = conv_flops(pixels, cin, cout, k) / ms / 1e6
        rows.append(dict(shape=f"{pixels}x{pixels} {cin}->{cout} k{k}", ms=round(ms, 3),
                         gflops=round(gflops, 1)))
        print(f"TF {rows[-1]['shape']:22s} {ms:8.2f} ms {gflops:6.0f} GFLOP/s", flush=True)
    if f.json:
        with open(f.json, "w") as fh:
            json.dump(dict(runtime=f"tensorflow {tf.__version__}", threads=f.threads or None,
                           cpu=platform.processor() or platform.machine(), rows=rows), fh, indent=1)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import app, flags

    flags.DEFINE_string("shapes", RETINANET_512, "comma-separated PIXELSxINxOUTxKERNEL")
    flags.DEFINE_integer("threads", 0, "intra-op threads (0: TensorFlow's default, one per core)")
    flags.DEFINE_integer("runs", 30, "timed calls per shape")
    flags.DEFINE_integer("warmup", 20, "untimed calls first")
    flags.DEFINE_string("json", None, "write the results here")
    app.run(main)
