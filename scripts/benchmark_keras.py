"""Times a zoo model's Keras forward pass + post-processing (tf.function, batch 1, random input),
split into the network (backbone, neck, heads) and post-processing, with the FLOP count.

  python scripts/benchmark_keras.py --model retinanet_r50_fpn --sizes 512x512,800x1216
This is the in-process model only: no file reading or decoding. The deployment figure is
scripts/benchmark.py on the exported SavedModel. FLOPs are TF's profiler count of the
network's graph (2 per multiply-add: convolutions and matmuls).
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import tfdet  # noqa: E402

flags.DEFINE_string("model", "retinanet_r50_fpn", "zoo name")
flags.DEFINE_string("sizes", "512x512", "comma-separated HxW input sizes")
flags.DEFINE_integer("runs", 10, "timed runs per size (after 3 warm-up runs)")
flags.DEFINE_bool("size_cycle", False, "with --train_batch: time single steps through the "
                  "sizes twice, printing how often the step was traced")
flags.DEFINE_bool("fold_norms", False, "fold the norms into the convs first (tfdet.export."
                  "fold_norms), as scripts/export.py does")
flags.DEFINE_integer("train_batch", 0, "instead: time a training step (SGD, the zoo's frozen "
                     "norm) on batches of this many random images with two boxes each")
flags.DEFINE_float("train_lr", 0.0, "with --train_batch: the SGD learning rate. 0 does a "
                   "step's whole work (gradients, decay, momentum, update) and keeps random "
                   "weights finite: under the zoo's frozen (identity) norms they diverge at any "
                   "useful LR (RetinaNet at 1e-4 within 8 steps, in torchvision too)")


def network_outputs(model, x):
    """The network part: backbone, neck and dense heads (RPN for two-stage models)."""
    return model.network(x, training=False)


def network_flops(model, h, w):
    """FLOPs of the network (no post-processing) at an input of h x w, from TF's profiler."""
    fn = tf.function(lambda x: network_outputs(model, x)).get_concrete_function(
        tf.TensorSpec([1, h, w, 3], tf.float32))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=fn.graph, options=options).total_float_ops


def _fetch(outputs):
    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, outputs)


def timed(fn, x, runs):
    for _ in range(3):
        _fetch(fn(x))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _fetch(fn(x))
        times.append(time.perf_counter() - start)
    return np.median(times), min(times)


def size_cycle(trainer, batches, passes=2):
    """Times single training steps over batches of different sizes, `passes` times in order:
    shows whether a new input size recompiles the step (YOLOv3's random size per batch)."""
    for p in range(passes):
        for batch in batches:
            start = time.perf_counter()
            trainer.train_step(batch)
            took = time.perf_counter() - start
            size = "x".join(str(v) for v in batch["images"].shape[1:3])
            print(f"pass {p + 1} {size}: {took * 1000:.0f} ms; step traced "
                  f"{trainer.traces()} time(s) so far")


def train_step_speed(f):
    import keras

    from tfdet.training import Trainer

    n = f.train_batch
    trainer = Trainer(lambda: tfdet.models.get(f.model),
                      lambda: keras.optimizers.SGD(f.train_lr, momentum=0.9), weight_decay=1e-4)
    batches = []
    for size in f.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        batches.append(
            {"images": tf.random.normal([n, h, w, 3], seed=1),
             "boxes": tf.constant([[[10.0, 20.0, 200.0, 220.0], [100.0, 50.0, 300.0, 300.0]]] * n),
             "classes": tf.constant([[3, 17]] * n), "is_crowd": tf.zeros([n, 2], tf.bool)})
    if f.size_cycle:
        return size_cycle(trainer, batches)
    for batch in batches:
        h, w = batch["images"].shape[1:3]
        step, _ = timed(lambda b: trainer.train_step(b)[0], batch, f.runs)
        print(f"{trainer.model.name} train step batch {n} {h}x{w}: median {step * 1000:.0f} ms "
              f"= {n / step:.2f} images/s over {f.runs} steps ({os.cpu_count()} CPUs)")


def two_stage_split(model, x, runs):
    """Cumulative timings of a Faster R-CNN: network (backbone, neck, RPN head), + proposals,
    + RoIAlign and box head, + post-processing (+ the mask branch of a Mask R-CNN: RoIAlign,
    mask head and class selection on the detections); returns per-stage differences in ms."""
    def upto(stage):
        def fn(images):
            if stage == 4:
                return model(images)
            *features, logits, deltas = model.network(images)
            if stage == 0:
                return logits
            rois, valid = model.proposals(images, logits, deltas, False)
            if stage == 1:
                return rois
            cls, box = model.box_head(model.roi_features(features, rois))
            if stage == 2:
                return cls, box
            return model.roi_heads.postprocess(images, rois, valid, tf.nn.softmax(cls), box)
        return tf.function(fn)

    names = ["backbone+neck+rpn head", "proposals", "roi align+box head", "post-processing"]
    if hasattr(model, "mask_head"):
        names.append("mask branch")
    cumulative = [timed(upto(stage), x, runs)[0] * 1000 for stage in range(len(names))]
    return {n: cumulative[i] - (cumulative[i - 1] if i else 0) for i, n in enumerate(names)}


def main(_):
    f = flags.FLAGS
    if f.train_batch:
        return train_step_speed(f)
    model = tfdet.models.get(f.model)
    if f.fold_norms:
        from tfdet.export import fold_norms
        fold_norms(model)
    forward = tf.function(lambda x: model(x, training=False))
    network = tf.function(lambda x: network_outputs(model, x))
    for size in f.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        x = tf.random.normal([1, h, w, 3], seed=1)
        total, total_min = timed(forward, x, f.runs)
        net, _ = timed(network, x, f.runs)
        flops = network_flops(model, h, w)
        print(f"{model.name} Keras tf.function batch 1 {h}x{w}: median {total * 1000:.0f} ms "
              f"(min {total_min * 1000:.0f}) over {f.runs} runs; network alone {net * 1000:.0f} "
              f"ms, the rest {max(total - net, 0) * 1000:.0f} ms; network "
              f"{flops / 1e9:.1f} GFLOP = {flops / 1e9 / net:.0f} GFLOP/s "
              f"({os.cpu_count()} CPUs)")
        if hasattr(model, "proposals"):
            split = two_stage_split(model, x, f.runs)
            print("  split (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in split.items()))


if __name__ == "__main__":
    app.run(main)
