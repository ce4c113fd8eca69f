"""SSD learns: MobileNetV1-SSD (the ssd_mobilenet_v1_voc architecture, trainable BN) from
scratch at 192 px on 16 raccoon images reaches AP50 >= 0.9 on them.

The quickstart recipe (AdamW, 50-step warmup, batch 8) with LR 2e-3, x0.1 for the last quarter,
square resize and flips only: SSD's expand / crop augmentation makes 16 images a different
task at every step and is for full data sets. Measured while writing it: with LR 1e-3, AP50
0.34 / 0.42 / 0.60 / 0.88 after 50 / 100 / 150 / 200 steps; with 2e-3 over 300 steps, 0.41,
0.50, 0.90, 0.98, 1.0 after 50 ... 250 steps; about 0.35 s per step on 2 cores.
"""
from tests.models._learning import train_on_16_raccoons

STEPS = 250


def test_ssd_mobilenet_reaches_ap50_09_on_16_raccoon_images():
    metrics, losses = train_on_16_raccoons([
        "ModelConfig.name = 'ssd_mobilenet_v1_voc'",
        "ModelConfig.overrides = {'image_size': 192}",
        "DataConfig.augment = 'square'", "DataConfig.square_size = 192",
        "DataConfig.size_divisor = 1",
        "DataConfig.mean = (127.5, 127.5, 127.5)", "DataConfig.std = (127.5, 127.5, 127.5)",
        "ScheduleConfig.base_lr = 0.002",
        f"ScheduleConfig.total_steps = {STEPS}",
        f"ScheduleConfig.milestones = ({STEPS * 3 // 4},)",
    ], STEPS)
    assert metrics["AP50"] >= 0.9, (metrics, losses)
