"""SSD learns: MobileNetV1-SSD (the ssd_mobilenet_v1_voc architecture, trainable BN) from
scratch at 160 px on 16 raccoon images reaches AP50 >= 0.9 on them.

The quickstart recipe (AdamW, 50-step warmup, batch 8) with LR 2e-3, x0.1 for the last quarter,
square resize and flips only: SSD's expand / crop augmentation makes 16 images a different
task at every step and is for full data sets. Measured while writing it, at 192 px: with LR
1e-3, AP50 0.34 / 0.42 / 0.60 / 0.88 after 50 / 100 / 150 / 200 steps; with 2e-3 over 300
steps, 0.41, 0.50, 0.90, 0.98, 1.0 after 50 ... 250 steps. At 160 px on a 2-core Xeon
(AVX-512), `learning_curve ssd 160 16 200 25`: 0.32 / 0.31 / 0.32 / 0.71 / 0.73 / 0.74 / 0.99 /
0.97 after 25 ... 200 steps (the decay at 150), but 0.87 at 200 with one intra-op thread (the
suite's setting; its different rounding stands in for another CPU). Over 240 steps (decay at
180), two runs, two threads / one: 0.85 / 0.89 at 180, 1.0 / 0.95 at 200, 1.0 / 0.96 at 220,
1.0 / 1.0 at 240. 240 steps is the budget.
"""
from tests.models._learning import train_on_16_raccoons

STEPS = 240
SIZE = 160


def test_ssd_mobilenet_reaches_ap50_09_on_16_raccoon_images():
    metrics, losses = train_on_16_raccoons([
        "ModelConfig.name = 'ssd_mobilenet_v1_voc'",
        f"ModelConfig.overrides = {{'image_size': {SIZE}}}",
        "DataConfig.augment = 'square'", f"DataConfig.square_size = {SIZE}",
        f"DataConfig.short_side = ({SIZE},)", f"DataConfig.max_long_side = {SIZE}",
        f"DataConfig.eval_short_side = {SIZE}", f"DataConfig.pad_size = ({SIZE}, {SIZE})",
        "DataConfig.size_divisor = 1",
        "DataConfig.mean = (127.5, 127.5, 127.5)", "DataConfig.std = (127.5, 127.5, 127.5)",
        "ScheduleConfig.base_lr = 0.002",
        f"ScheduleConfig.total_steps = {STEPS}",
        f"ScheduleConfig.milestones = ({STEPS * 3 // 4},)",
    ], STEPS)
    assert metrics["AP50"] >= 0.9, (metrics, losses)
