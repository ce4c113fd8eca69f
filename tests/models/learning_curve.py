"""A learning test's curve: AP50 on the training images every EVERY steps, for calibrating
the learning tests' budgets (BENCHMARKS.md).

    python -m tests.models.learning_curve FAMILY SIZE NUM_IMAGES STEPS EVERY [gin bindings...]

FAMILY: retina, frcnn, cascade, yolo or ssd (the learning tests' recipes on raccoon), or face
(BlazeFace on the dlib faces sample's 4 training images; NUM_IMAGES is ignored, and
TFDET_CURVE_HELDOUT=1 scores its 5 test images instead).
NUM_IMAGES: the first N training images, scored on themselves; 160 (the whole train split)
is scored on the 40 test images (TFDET_CURVE_HELDOUT=0 scores the training images). Prints one JSON
line per evaluation: step, AP50, AP (and mask_AP50 for Mask R-CNN), loss, training seconds,
wall seconds. `curve` is the loop, also used by tests/models/mask_learning_curve.py.
"""
import json
import os
import sys
import time

import keras
from tests.conftest import require_shared
from tests.training.test_trainer import QUICKSTART
from tfdet.config import load_experiment
from tfdet.evaluation import evaluate_detector
from tfdet.training import Trainer


def curve(exp, images, steps, at, seed=0, eval_images=None):
    """Trains exp's model on `images` from `seed` and prints the JSON line at each step in
    `at`, scored on eval_images (default: the training images)."""
    eval_images = eval_images or images
    keras.utils.set_random_seed(seed)
    trainer = Trainer(lambda: exp.build_model(images.num_classes), exp.build_optimizer)
    batches = iter(exp.train_pipeline(images, exp.train.global_batch_size))
    predict, pipeline, t0, train_t = None, None, time.time(), 0.0
    for step in range(1, steps + 1):
        t = time.time()
        losses, finite = trainer.train_step(next(batches))
        assert finite, losses
        train_t += time.time() - t
        if step in at:
            if predict is None:  # the config's test (DataConfig.face_test), batches of 8
                predict, pipeline = exp.evaluation_inputs(trainer.model, eval_images, 8,
                                                          tta=False)
            m, _ = evaluate_detector(predict, pipeline, eval_images, verbose=False,
                                     progress=False)
            line = {"step": step, "AP50": round(m["AP50"], 3), "AP": round(m["AP"], 3)}
            if "mask_AP50" in m:
                line["mask_AP50"] = round(m["mask_AP50"], 3)
            print(json.dumps(dict(line, loss=round(float(losses["total_loss"]), 3),
                                  train_s=round(train_t, 1), wall=round(time.time() - t0, 1))),
                  flush=True)


def face_bindings(size, steps):
    """The BlazeFace learning recipe on the dlib faces sample (tests/models/
    test_blazeface_learning.py): the quickstart's AdamW at `size` px, square resize and flips."""
    root = require_shared("faces_dlib")
    return [f"DataConfig.train = 'dlib:{root}/training.xml'",
            f"DataConfig.eval = 'dlib:{root}/testing.xml'",
            "ModelConfig.name = 'blazeface'",
            # From scratch in a few hundred steps every layer learns at the full rate (the
            # row's 0.1 on the backbone is Paddle's 1000-epoch recipe).
            f"ModelConfig.overrides = {{'image_size': {size}, 'backbone_lr_mult': 1.0}}",
            "DataConfig.augment = 'square'", f"DataConfig.square_size = {size}",
            f"DataConfig.short_side = ({size},)", f"DataConfig.max_long_side = {size}",
            f"DataConfig.eval_short_side = {size}", f"DataConfig.pad_size = ({size}, {size})",
            "DataConfig.size_divisor = 1", "DataConfig.train_limit = None",
            "DataConfig.mean = (123.0, 117.0, 104.0)",
            "DataConfig.std = (127.502231, 127.502231, 127.502231)",
            "TrainConfig.global_batch_size = 8",
            "ScheduleConfig.base_lr = 0.004", f"ScheduleConfig.total_steps = {steps}",
            f"ScheduleConfig.milestones = ({steps * 3 // 4},)"]


def main(argv):
    fam, size, nimg = argv[1], int(argv[2]), int(argv[3])
    steps, every = int(argv[4]), int(argv[5])
    extra = argv[6:]
    from tests.models._learning import RCNN_R18 as rcnn
    families = {
        "retina": ["ModelConfig.overrides = {'depth': 18, 'norm': 'bn', 'freeze_at': 0, "
                   "'fpn_channels': 64}"],
        "frcnn": ["ModelConfig.name = 'faster_rcnn_r50_fpn_1x'", rcnn,
                  "DataConfig.size_divisor = 32"],
        "cascade": ["ModelConfig.name = 'cascade_rcnn_r50_fpn_1x'", rcnn,
                    "DataConfig.size_divisor = 32"],
        "yolo": ["ModelConfig.name = 'yolov3_mobilenet_v1'", "ModelConfig.overrides = {}",
                 "DataConfig.augment = 'square'", f"DataConfig.square_size = {size}",
                 "DataConfig.size_divisor = 32", "ScheduleConfig.base_lr = 0.003"],
        "ssd": ["ModelConfig.name = 'ssd_mobilenet_v1_voc'",
                f"ModelConfig.overrides = {{'image_size': {size}}}",
                "DataConfig.augment = 'square'", f"DataConfig.square_size = {size}",
                "DataConfig.size_divisor = 1",
                "DataConfig.mean = (127.5, 127.5, 127.5)",
                "DataConfig.std = (127.5, 127.5, 127.5)", "ScheduleConfig.base_lr = 0.002"],
    }
    if fam == "face":
        exp = load_experiment(QUICKSTART, face_bindings(size, steps) + list(extra))
        images = exp.dataset(exp.data.train)
        heldout = None
        if os.environ.get("TFDET_CURVE_HELDOUT") == "1":
            heldout = exp.dataset(exp.data.eval, evaluation=True)
        curve(exp, images, steps, {s for s in range(1, steps + 1) if s % every == 0 or s == steps},
              eval_images=heldout)
        return
    root = require_shared("raccoon")
    pad = -(-size // 32) * 32 if fam != "retina" else -(-size // 128) * 128
    exp = load_experiment(QUICKSTART, [
        f"DataConfig.train = 'csv:{root}/data/train_labels.csv:{root}/images'",
        f"DataConfig.train_limit = {nimg}", "TrainConfig.global_batch_size = 8",
        f"DataConfig.short_side = ({size},)", f"DataConfig.max_long_side = {pad}",
        f"DataConfig.eval_short_side = {size}", f"DataConfig.pad_size = ({pad}, {pad})",
        f"ScheduleConfig.total_steps = {steps}",
        f"ScheduleConfig.milestones = ({steps * 3 // 4},)", *families[fam], *extra])
    images = exp.dataset(exp.data.train, exp.data.train_limit)
    heldout = None
    if nimg >= 160 and os.environ.get("TFDET_CURVE_HELDOUT", "1") != "0":
        heldout = exp.dataset(f"csv:{root}/data/test_labels.csv:{root}/images",
                              evaluation=True)
    curve(exp, images, steps, {s for s in range(1, steps + 1) if s % every == 0 or s == steps},
          eval_images=heldout)


if __name__ == "__main__":
    main(sys.argv)
