"""Measures a SavedModel as the zoo does: batch 1 over a folder of images, file reading and
decoding, the forward pass and post-processing all included.

  python scripts/benchmark.py --saved_model saved_models/X/1 --images DIR [--num_images N]
      [--warmup 3] [--json OUT.json]
Prints images/s and latency percentiles; --json writes {"fps", "latency_ms": {"p50", "p90",
"p99", "mean"}, "minor_faults_per_image", "sys_ms_per_image", "num_images", "model",
"device", "input": "..."}.
"""
import glob
import json
import os
import platform
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_string("saved_model", None, "SavedModel folder", required=True)
flags.DEFINE_string("images", None, "folder of JPEG / PNG images", required=True)
flags.DEFINE_integer("num_images", 50, "images to time (cycling through the folder)")
flags.DEFINE_integer("warmup", 3, "untimed runs first")
flags.DEFINE_string("signature", "serving_encoded", "serving_encoded (bytes in), serving_tta or "
                    "serving_default (decoded uint8 in; decoding then happens outside the timing)")
flags.DEFINE_string("json", None, "write the result here")

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def device_name():
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} CPU cores"


def main(_):
    import tensorflow as tf

    f = flags.FLAGS
    files = sorted(p for p in glob.glob(os.path.join(f.images, "*"))
                   if p.lower().endswith(EXTENSIONS))
    if not files:
        raise SystemExit(f"no images ({', '.join(EXTENSIONS)}) in {f.images}")
    model = tf.saved_model.load(f.saved_model)
    fn = model.signatures[f.signature]

    def run(path):
        if f.signature == "serving_encoded":
            with open(path, "rb") as fh:
                out = fn(encoded_images=tf.constant([fh.read()]))
        else:
            image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                                       expand_animations=False)
            out = fn(images=image[None])
        return out["num_detections"].numpy()

    for i in range(f.warmup):
        run(files[i % len(files)])
    latencies = []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(f.num_images):
        start = time.perf_counter()
        run(files[i % len(files)])
        latencies.append((time.perf_counter() - start) * 1000.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    lat = np.asarray(latencies)
    result = {"fps": float(1000.0 / lat.mean()),
              "latency_ms": {"p50": float(np.percentile(lat, 50)),
                             "p90": float(np.percentile(lat, 90)),
                             "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())},
              "minor_faults_per_image": (after.ru_minflt - usage.ru_minflt) / f.num_images,
              "sys_ms_per_image": (after.ru_stime - usage.ru_stime) * 1000 / f.num_images,
              "num_images": int(f.num_images), "model": os.path.abspath(f.saved_model),
              "device": device_name(), "input": f"{f.signature}, batch 1, {f.images}"}
    print(f"{result['fps']:.2f} images/s; latency ms p50 {result['latency_ms']['p50']:.1f} "
          f"p90 {result['latency_ms']['p90']:.1f} p99 {result['latency_ms']['p99']:.1f} "
          f"over {f.num_images} images; {result['minor_faults_per_image']:.0f} minor page faults "
          f"and {result['sys_ms_per_image']:.0f} ms kernel time per image ({result['device']})")
    if f.json:
        with open(f.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    app.run(main)
