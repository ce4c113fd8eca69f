"""Latency of a converted PaddleDetection model in tfdet, to set beside ppdet's own on the same
image and size (ppdet's side: `make_paddle_fixtures.py --latency ROW`, in the reference venv).

    python scripts/paddle_latency.py --row faster_rcnn_r50_fpn_1x_coco
    $PADDLE_PY scripts/make_paddle_fixtures.py --configs PaddleDetection/configs \
        --latency faster_rcnn_r50_fpn_1x_coco

Both run the row's parity fixture (tests/parity/fixtures): its seeded weights, its first image
after the config's Resize (or --size S: resampled to S x S, nearest pixel, for the rows that
take any square input: BlazeFace), normalised and padded to 32, batch 1, in eval mode, the
whole model including post-processing (tfdet: the Keras model under one compiled
tf.function; ppdet: the dygraph model under paddle.no_grad). Prints one JSON line: median /
mean ms over --runs after --warmup. Run both in one sitting on one machine: only then do the
figures compare.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "parity" / "fixtures"


def seeded(manifest):
    spec = importlib.util.spec_from_file_location(
        "seeded_weights", ROOT / "tests" / "parity" / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.seeded_state(manifest["shapes"], manifest["seed"],
                               {k: tuple(v) for k, v in manifest["overrides"].items()})


def resampled(image, pixels, size):
    """(image record, pixels) at size x size (nearest pixel; the same in both frameworks)."""
    h, w = pixels.shape[:2]
    rows = (np.arange(size) * h // size).astype(int)
    cols = (np.arange(size) * w // size).astype(int)
    image = dict(image, input_size=[size, size], im_shape=[size, size],
                 scale_factor=[size / h * image["scale_factor"][0],
                               size / w * image["scale_factor"][1]])
    return image, pixels[rows][:, cols]


def fixture_input(image, pixels):
    """The normalised, padded HWC input from the fixture's uint8 RGB pixels."""
    x = pixels.astype(np.float32)
    norm = image["normalise"]
    if norm["is_scale"]:
        x = x / 255.0
    x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    h, w = image["input_size"]
    padded = np.zeros((h, w, 3), np.float32)
    padded[:x.shape[0], :x.shape[1]] = x
    return padded


def time_runs(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), statistics.mean(times)


def tfdet_runner(row, manifest, image, size=None, fold=False):
    """(a function running the whole model once, the image record it runs on); fold: with
    the norms folded into the convs first (tfdet.export.fold_norms, as exports do)."""
    import tensorflow as tf

    from tfdet.convert import from_paddle
    model, spec = from_paddle(row, seeded(manifest), **({"image_size": size} if size else {}))
    if fold:
        from tfdet.export import fold_norms
        fold_norms(model)
    pixels = tf.image.decode_png(tf.io.read_file(str(FIXTURES / image["resized"])), 3).numpy()
    if size:
        image, pixels = resampled(image, pixels, size)
    x = tf.constant(fixture_input(image, pixels)[None])
    sizes = tf.constant([image["im_shape"]], tf.float32)
    if spec.family in ("retinanet", "ssd"):  # whole fixed-size inputs
        fn = tf.function(lambda: model(x), jit_compile=False)
    else:
        fn = tf.function(lambda: model(x, image_sizes=sizes), jit_compile=False)
    return (lambda: {k: v.numpy() for k, v in fn().items()}), image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", type=int, help="a square input of this size (BlazeFace)")
    parser.add_argument("--fold_norms", action="store_true",
                        help="fold the norms into the convs first, as scripts/export.py does")
    args = parser.parse_args()
    manifest = json.loads((FIXTURES / f"{args.row}.json").read_text())
    run, image = tfdet_runner(args.row, manifest, manifest["images"][0], args.size,
                              args.fold_norms)
    median, mean = time_runs(run, args.warmup, args.runs)
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), platform.machine())
    print(json.dumps({"framework": "tfdet", "row": args.row, "fold_norms": args.fold_norms,
                      "input": image["input_size"], "median_ms": round(median, 1),
                      "mean_ms": round(mean, 1), "runs": args.runs,
                      "cpu": f"{cpu}, {os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
