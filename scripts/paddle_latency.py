"""Latency of a converted PaddleDetection model in tfdet beside ppdet's own, same image and size.

    python scripts/paddle_latency.py --framework tfdet --row faster_rcnn_r50_fpn_1x_coco
    $PADDLE_PY scripts/paddle_latency.py --framework paddle --row faster_rcnn_r50_fpn_1x_coco \
        --configs PaddleDetection/configs

Both run the row's parity fixture (tests/parity/fixtures): its seeded weights, its first image
after the config's Resize, normalised and padded to 32, batch 1, in eval mode, the whole model
including post-processing (tfdet: the Keras model under one compiled tf.function; ppdet: the
dygraph model under paddle.no_grad). Prints one JSON line: median / mean ms over --runs after
--warmup. Run both in one sitting on one machine: only then do the figures compare.
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


def _seeded(manifest):
    spec = importlib.util.spec_from_file_location(
        "seeded_weights", ROOT / "tests" / "parity" / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.seeded_state(manifest["shapes"], manifest["seed"],
                               {k: tuple(v) for k, v in manifest["overrides"].items()})


def _image(image, pixels):
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


def _time(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), statistics.mean(times)


def tfdet_runner(row, manifest, image):
    import tensorflow as tf

    from tfdet.convert import from_paddle
    model, spec = from_paddle(row, _seeded(manifest))
    pixels = tf.image.decode_png(tf.io.read_file(str(FIXTURES / image["resized"])), 3)
    x = tf.constant(_image(image, pixels.numpy())[None])
    sizes = tf.constant([image["im_shape"]], tf.float32)
    if spec.family == "retinanet":
        fn = tf.function(lambda: model(x), jit_compile=False)
    else:
        fn = tf.function(lambda: model(x, image_sizes=sizes), jit_compile=False)
    return lambda: {k: v.numpy() for k, v in fn().items()}


def paddle_runner(row, manifest, image, configs):
    import paddle
    import ppdet.data  # noqa: F401
    import ppdet.modeling  # noqa: F401
    from ppdet.core.workspace import create, load_config
    spec = importlib.util.spec_from_file_location("fixtures", ROOT / "scripts" /
                                                  "make_paddle_fixtures.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    fixtures._compat_shims(paddle)
    paddle.set_device("cpu")
    model = create(load_config(str(pathlib.Path(configs) / manifest["config"])).architecture)
    model.eval()
    model.set_state_dict(_seeded(manifest))
    import cv2
    pixels = cv2.cvtColor(cv2.imread(str(FIXTURES / image["resized"])), cv2.COLOR_BGR2RGB)
    inputs = {"image": paddle.to_tensor(_image(image, pixels).transpose(2, 0, 1)[None]),
              "im_shape": paddle.to_tensor(np.asarray([image["im_shape"]], np.float32)),
              "scale_factor": paddle.to_tensor(np.asarray([image["scale_factor"]],
                                                          np.float32))}

    def run():
        with paddle.no_grad():
            out = model(inputs)
        return out["bbox"].numpy()
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["tfdet", "paddle"], required=True)
    parser.add_argument("--row", required=True)
    parser.add_argument("--configs", help="PaddleDetection's configs/ (paddle only)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    manifest = json.loads((FIXTURES / f"{args.row}.json").read_text())
    image = manifest["images"][0]
    if args.framework == "tfdet":
        run = tfdet_runner(args.row, manifest, image)
    else:
        run = paddle_runner(args.row, manifest, image, args.configs)
    median, mean = _time(run, args.warmup, args.runs)
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), platform.machine())
    print(json.dumps({"framework": args.framework, "row": args.row,
                      "input": image["input_size"], "median_ms": round(median, 1),
                      "mean_ms": round(mean, 1), "runs": args.runs,
                      "cpu": f"{cpu}, {os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
