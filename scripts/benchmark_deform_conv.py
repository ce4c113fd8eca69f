"""Times tfdet.ops.deform_conv2d on the 3x3 convs of ResNet-50's c3-c5 stages (13 convs, DCN
on every one, as the zoo's dcn rows) for an 800 x 1216 input, batch 1, and the split between
the bilinear sampling and the matmul. torchvision's side of the same shapes:
`$PEERS/venv-torch/bin/python scripts/make_torchvision_fixtures.py --benchmark`.

    python scripts/benchmark_deform_conv.py [--height 800 --width 1216 --runs 5] [--xla]
Prints one JSON line.
"""
import argparse
import json
import os
import sys

import numpy as np


def resnet50_dcn_shapes(height, width):
    """(input channels, input h, w, stride) of each 3x3 conv in ResNet-50's res3-res5 (the
    stride sits on the first block's 3x3 conv, variant b)."""
    shapes = []
    h, w = -(-height // 4), -(-width // 4)  # C2
    for channels, blocks in ((128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            stride = 2 if b == 0 else 1
            shapes.append((channels, h, w, stride))
            if stride == 2:
                h, w = -(-h // 2), -(-w // 2)
    return shapes


def case_tensors(channels, h, w, stride, seed):
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(1, h, w, channels)).astype(np.float32),
            rng.normal(size=(1, ho, wo, 18)).astype(np.float32),
            (rng.normal(size=(3, 3, channels, channels)) / np.sqrt(9 * channels)).astype(
                np.float32),
            rng.uniform(size=(1, ho, wo, 9)).astype(np.float32))


def median_ms(fn, warmup, runs):
    """The median of `runs` timed calls after `warmup` (paddle_latency.time_runs)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "paddle_latency", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       "paddle_latency.py"))
    latency = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency)  # numpy only at import
    return latency.time_runs(fn, warmup, runs)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1216)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--xla", action="store_true", help="jit_compile the op")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tfdet import ops
    shapes = resnet50_dcn_shapes(args.height, args.width)
    total = matmul_only = 0.0
    for i, (channels, h, w, stride) in enumerate(shapes):
        x, offset, kernel, mask = (tf.constant(t) for t in case_tensors(channels, h, w,
                                                                          stride, i))
        conv = tf.function(lambda x, o, k, m, s=stride: ops.deform_conv2d(
            x, o, k, mask=m, strides=s, padding=1), jit_compile=args.xla)
        total += median_ms(lambda: conv(x, offset, kernel, mask).numpy(), args.warmup,
                           args.runs)
        # The matmul alone on the columns' shape; sampling = the rest.
        columns = tf.random.normal([offset.shape[1] * offset.shape[2], 9 * channels])
        flat_kernel = tf.reshape(kernel, [9 * channels, channels])
        mm = tf.function(lambda c, k: tf.matmul(c, k), jit_compile=args.xla)
        matmul_only += median_ms(lambda: mm(columns, flat_kernel).numpy(), args.warmup,
                                 args.runs)
    sampling_only = total - matmul_only
    print(json.dumps({"framework": "tfdet", "op": "deform_conv2d", "xla": args.xla,
                      "input": [args.height, args.width], "convs": len(shapes),
                      "total_ms": round(total, 1), "matmul_ms": round(matmul_only, 1),
                      "sampling_ms": round(sampling_only, 1), "python": sys.version.split()[0],
                      "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
