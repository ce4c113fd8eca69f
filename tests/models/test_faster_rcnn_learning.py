"""Faster R-CNN learns: ResNet-18 FPN from scratch on 16 raccoon images reaches AP50 >= 0.9
on them.

The quickstart recipe (trainable BN, AdamW 1e-3 with a 50-step warmup, batch 8) at 192 px with
a 64-channel FPN, a 256-wide 2fc head, 128 sampled RoIs and fewer proposals than the zoo's;
measured here: AP50 1.0 after 50 and 100 steps (AP 0.51, 0.87). The step budget leaves margin for run-to-run noise.
"""
import keras

from tests.conftest import require_shared
from tests.training.test_trainer import QUICKSTART
from tfdet.config import load_experiment
from tfdet.evaluation import compiled_predictor, evaluate_detector
from tfdet.training import Trainer

STEPS = 60


def test_faster_rcnn_r18_reaches_ap50_09_on_16_raccoon_images():
    root = require_shared("raccoon")
    exp = load_experiment(QUICKSTART, [
        "ModelConfig.name = 'faster_rcnn_r50_fpn_1x'",
        f"DataConfig.train = 'csv:{root}/data/train_labels.csv:{root}/images'",
        "DataConfig.train_limit = 16",
        "ModelConfig.overrides = {'depth': 18, 'norm': 'bn', 'freeze_at': 0, "
        "'fpn_channels': 64, 'fc_dim': 256, 'roi_batch_per_image': 128, "
        "'train_pre_nms_top_k': 600, 'train_post_nms_top_k': 300, "
        "'test_pre_nms_top_k': 300, 'test_post_nms_top_k': 100}",
        "DataConfig.short_side = (192,)", "DataConfig.max_long_side = 256",
        "DataConfig.eval_short_side = 192", "DataConfig.pad_size = (256, 256)",
        "DataConfig.size_divisor = 32",
        "ScheduleConfig.total_steps = 1000", "ScheduleConfig.milestones = (800,)",
    ])
    images = exp.dataset(exp.data.train, exp.data.train_limit)
    assert len(images) == 16
    keras.utils.set_random_seed(0)
    trainer = Trainer(lambda: exp.build_model(images.num_classes), exp.build_optimizer)
    batches = iter(exp.train_pipeline(images, exp.train.global_batch_size))
    for _ in range(STEPS):
        losses, finite = trainer.train_step(next(batches))
        assert finite, losses
    metrics, _ = evaluate_detector(compiled_predictor(trainer.model),
                                   exp.eval_pipeline(images, 8), images, verbose=False,
                                   progress=False)
    assert metrics["AP50"] >= 0.9, (metrics, losses)
