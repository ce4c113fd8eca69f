"""Mask R-CNN learns: ResNet-18 FPN from scratch on the four coco128 images that show only
elephants or zebras (14 instances) reaches box and mask AP50 >= 0.8 on them.

The quickstart recipe (trainable BN, AdamW 1e-3, 50-step warmup) at 192 px, batch 4, with a
64-channel FPN and mask head, a 256-wide 2fc head and 128 sampled RoIs, the LR x0.1 for the
last quarter of 112 steps. Measured on a 2-core Xeon (AVX-512), box AP50 / mask AP50 by
training seed (tests/models/mask_learning_curve.py): seeds 0 and 3 over 150 steps, 0.99-1.0 /
0.91-0.94 after 75 and 1.0 / 1.0 at 112, 131 and 150; seeds 1 and 2 over 200 steps, 1.0 /
0.94 at 100 and 1.0 / 1.0 at 150, 175 and 200; seed 0 over 112 steps (this test), 1.0 / 0.68
at 56 and 1.0 / 1.0 at 84, 98 and 112. Image 597 is left out: its seven elephants are
10-20 px at 192 px.

The test used the five giraffe / zebra images (11 instances) before: a third of those are
thin or barely visible at 192 px (a 40x17 px giraffe, one whose mask fills 12 % of its box),
so one instance more or less moved mask AP50 between 0.80 and 0.93 with the seed, and a
run beside other tests (parallel workers) ended at 0.797.

The curves above were measured while a head / neck handed one initializer instance to all its
convs (identical starting kernels, mended in 984f306); the test passes with a draw per conv.
"""
import dataclasses

import numpy as np

from tests.conftest import require_shared
from tests.models._learning import train_and_score
from tests.training.test_trainer import QUICKSTART
from tfdet.config import load_experiment

STEPS = 112
CLASSES = ("elephant", "zebra")
TOO_SMALL = (597,)


def _only(dataset, names):
    """The images whose every instance is one of `names`, with classes renumbered 0..n-1."""
    keep = [dataset.class_names.index(n) for n in names]
    examples = [dataclasses.replace(ex, classes=np.asarray([keep.index(c) for c in ex.classes],
                                                           np.int32))
                for ex in dataset.examples if set(ex.classes.tolist()) <= set(keep)]
    return dataclasses.replace(dataset, examples=examples, class_names=list(names),
                               category_ids=[dataset.category_ids[k] for k in keep])


def experiment(steps=STEPS, extra=()):
    """(the test's experiment trained for `steps`, its four images)."""
    root = require_shared("coco128")
    exp = load_experiment(QUICKSTART, [
        f"DataConfig.train = 'coco:{root}/annotations/instances_train2017_first128.json:"
        f"{root}/images/train2017'",
        "DataConfig.short_side = (192,)", "DataConfig.max_long_side = 192",
        "DataConfig.eval_short_side = 192", "DataConfig.pad_size = (192, 192)",
        "DataConfig.size_divisor = 32",
        f"ScheduleConfig.total_steps = {steps}", f"ScheduleConfig.milestones = ({steps * 3 // 4},)",
        "TrainConfig.global_batch_size = 4",
        "ModelConfig.name = 'mask_rcnn_r50_fpn_1x'",
        "ModelConfig.overrides = {'depth': 18, 'norm': 'bn', 'freeze_at': 0, "
        "'fpn_channels': 64, 'fc_dim': 256, 'roi_batch_per_image': 128, "
        "'mask_conv_dim': 64, 'train_pre_nms_top_k': 600, 'train_post_nms_top_k': 300, "
        "'test_pre_nms_top_k': 300, 'test_post_nms_top_k': 100}", *extra,
    ])
    images = _only(exp.dataset(exp.data.train), CLASSES)
    images = dataclasses.replace(images, examples=[ex for ex in images.examples
                                                   if ex.image_id not in TOO_SMALL])
    return exp, images


def test_mask_rcnn_r18_reaches_box_and_mask_ap50_08_on_coco128_elephants_and_zebras():
    exp, images = experiment()
    assert [ex.image_id for ex in images.examples] == [34, 154, 263, 312]
    metrics, losses = train_and_score(exp, images, STEPS, eval_batch=4)
    assert metrics["AP50"] >= 0.8 and metrics["mask_AP50"] >= 0.8, (metrics, losses)
