"""Measures the input pipeline alone: images/s of decode + resize + flip + normalise + batch.

  python scripts/benchmark_pipeline.py --data csv:LABELS.csv:IMAGES --short 800 --max_long 1333
  python scripts/benchmark_pipeline.py --data dlib:FACES.xml --augment face --short 640
Runs the training pipeline (shuffle, repeat, random flip) for --warmup batches, then times
--batches batches and prints images/s with the machine and the settings.
"""
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfdet import data  # noqa: E402

flags.DEFINE_string("data", "sample", "data spec")
flags.DEFINE_integer("short", 800, "shorter side after resizing")
flags.DEFINE_integer("max_long", 1333, "cap on the longer side")
flags.DEFINE_integer("batch_size", 2, "global batch size")
flags.DEFINE_integer("batches", 100, "timed batches")
flags.DEFINE_integer("warmup", 10, "untimed batches first")
flags.DEFINE_enum("augment", "standard", ["standard", "ssd", "face"],
                  "'standard': resize keeping aspect + flip; 'ssd' / 'face': SSD's distortion, "
                  "expand, min-IoU or data-anchor-sampling crop, flip, square resize to --short")


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(_):
    f = flags.FLAGS
    dataset = data.load_dataset(f.data)
    if f.augment == "standard":
        transform = data.detection_transforms(True, f.short, f.max_long)
    else:
        transform = data.ssd_transforms(True, f.short, crop="data_anchor" if f.augment == "face"
                                        else "min_iou")
    pipe = data.input_pipeline(dataset, transform, f.batch_size, training=True, seed=0,
                               pad_size=None if f.augment == "standard" else (f.short,) * 2)
    it = iter(pipe)
    for _ in range(f.warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(f.batches):
        next(it)
    seconds = time.perf_counter() - start
    images = f.batches * f.batch_size
    print(f"pipeline {f.augment} {f.short}/{f.max_long} batch {f.batch_size} on {dataset.name} "
          f"({len(dataset)} images): {images / seconds:.1f} images/s "
          f"({images} images in {seconds:.2f} s; {os.cpu_count()} CPUs, {cpu_name()})")


if __name__ == "__main__":
    app.run(main)
