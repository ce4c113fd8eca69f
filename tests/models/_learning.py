"""Shared by the learning tests: train a model from a fixed seed and score it on its own
training images (by default a quickstart-recipe model on the first 16 raccoon images)."""
import keras

from tests.conftest import require_shared
from tests.training.test_trainer import QUICKSTART
from tfdet.config import load_experiment
from tfdet.data import release_iterator
from tfdet.evaluation import compiled_predictor, evaluate_detector, evaluator_for
from tfdet.training import Trainer

# The quickstart recipe at 192 px (padded to 256), LR constant after the warmup.
SMALL_RACCOON = [
    "DataConfig.train_limit = 16", "TrainConfig.global_batch_size = 8",
    "DataConfig.short_side = (192,)", "DataConfig.max_long_side = 256",
    "DataConfig.eval_short_side = 192", "DataConfig.pad_size = (256, 256)",
    "ScheduleConfig.total_steps = 1000", "ScheduleConfig.milestones = (800,)",
]

# The same at 128 px (a third of the step time): the R-CNN / RetinaNet / YOLO learning tests.
SMALL_RACCOON_128 = [
    "DataConfig.short_side = (128,)", "DataConfig.max_long_side = 128",
    "DataConfig.eval_short_side = 128", "DataConfig.pad_size = (128, 128)",
]


# The R-CNN learning tests' model: ResNet-18 FPN from scratch (trainable BN), a 64-channel FPN,
# 256-wide 2fc heads, 128 sampled RoIs and fewer proposals than the zoo's.
RCNN_R18 = ("ModelConfig.overrides = {'depth': 18, 'norm': 'bn', 'freeze_at': 0, "
            "'fpn_channels': 64, 'fc_dim': 256, 'roi_batch_per_image': 128, "
            "'train_pre_nms_top_k': 600, 'train_post_nms_top_k': 300, "
            "'test_pre_nms_top_k': 300, 'test_post_nms_top_k': 100}")


def train_on_16_raccoons(bindings, steps):
    """Trains `steps` steps from a fixed seed; returns (COCO metrics on the 16 images, the
    last step's losses)."""
    root = require_shared("raccoon")
    exp = load_experiment(QUICKSTART, [
        f"DataConfig.train = 'csv:{root}/data/train_labels.csv:{root}/images'",
        *SMALL_RACCOON, *bindings])
    images = exp.dataset(exp.data.train, exp.data.train_limit)
    assert len(images) == 16 and images.class_names == ["raccoon"]
    return train_and_score(exp, images, steps)


def train_and_score(exp, images, steps, eval_batch=8, also=None):
    """Trains exp's model on `images` for `steps` steps from a fixed seed; returns (COCO
    metrics on those images, the last step's losses). also: another metric (see
    evaluate_detector) whose numbers on the same detections join the COCO ones."""
    keras.utils.set_random_seed(0)
    trainer = Trainer(lambda: exp.build_model(images.num_classes), exp.build_optimizer)
    batches = iter(exp.train_pipeline(images, exp.train.global_batch_size))
    for _ in range(steps):
        losses, finite = trainer.train_step(next(batches))
        assert finite, losses
    holder = [batches]  # not dropped on this thread: that blocks for 10-30 s
    del batches
    release_iterator(holder)
    metrics, evaluator = evaluate_detector(compiled_predictor(trainer.model),
                                           exp.eval_pipeline(images, eval_batch), images,
                                           verbose=False, progress=False)
    if also:  # the same detections, scored again
        more = evaluator_for(also, images)
        for image_id, (boxes, classes, scores) in evaluator.per_image().items():
            more.add_detections([image_id], boxes[None], scores[None], classes[None])
        metrics.update({k: v for k, v in more.evaluate(verbose=False).items()
                        if k not in metrics})
    return metrics, losses
