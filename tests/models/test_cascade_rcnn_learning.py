"""Cascade R-CNN learns: ResNet-18 FPN from scratch on 16 raccoon images reaches AP50 >= 0.9
on them, with Faster R-CNN's learning-test recipe (tests/models/test_faster_rcnn_learning.py:
trainable BN, AdamW 1e-3 with a 50-step warmup, batch 8, 128 px, a 64-channel FPN, 256-wide
2fc heads, 128 sampled RoIs, fewer proposals than the zoo's); the three stages at IoU 0.5 /
0.6 / 0.7 as the zoo's. Calibrated on `learning_curve cascade 128 16 120 20` (BENCHMARKS.md;
the same seed, data order and learning rate up to step 90): AP50 0.64 / 0.993 / 1.0 / 1.0
after 20 / 40 / 60 / 80 steps, so 60 steps is the budget.
"""
from tests.models._learning import RCNN_R18, SMALL_RACCOON_128, train_on_16_raccoons

STEPS = 60


def test_cascade_rcnn_r18_reaches_ap50_09_on_16_raccoon_images():
    metrics, losses = train_on_16_raccoons([
        "ModelConfig.name = 'cascade_rcnn_r50_fpn_1x'",
        RCNN_R18, "DataConfig.size_divisor = 32", *SMALL_RACCOON_128,
    ], STEPS)
    assert metrics["AP50"] >= 0.9, (metrics, losses)
