"""Run in a fresh process (logical devices must be set before TF starts): one SGD step of a
small RetinaNet on one device and on two logical CPUs under MirroredStrategy, same global
batch; prints both losses and the largest weight difference as JSON."""
import json

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from tfdet import models  # noqa: E402
from tfdet.training import Trainer, get_strategy  # noqa: E402

BATCH = {
    "images": tf.random.stateless_normal([4, 128, 128, 3], [1, 2]),
    "boxes": tf.constant([[[10, 20, 60, 90], [0, 0, 0, 0]], [[30, 30, 110, 100], [5, 5, 40, 40]],
                          [[1, 2, 50, 60], [0, 0, 0, 0]], [[70, 30, 120, 100], [5, 5, 90, 40]]],
                         tf.float32),
    "classes": tf.constant([[0, -1], [1, 0], [1, -1], [0, 1]]),
    "is_crowd": tf.zeros([4, 2], tf.bool),
}


def one_step(strategy):
    keras.utils.set_random_seed(0)
    trainer = Trainer(
        lambda: models.get("retinanet_r50_fpn", num_classes=2, depth=18, norm="sync_bn",
                           freeze_at=0, fpn_channels=64),
        lambda: keras.optimizers.SGD(0.01, momentum=0.9), strategy, weight_decay=1e-4)
    before = [v.numpy() for v in trainer.model.weights]
    dataset = tf.data.Dataset.from_tensors(BATCH).repeat()
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    losses, finite = trainer.train_step(batch)
    after = [v.numpy() for v in trainer.model.weights]
    return losses, finite, before, after, strategy.num_replicas_in_sync


single = one_step(tf.distribute.get_strategy())
mirrored = one_step(get_strategy(["/cpu:0", "/cpu:1"]))
print(json.dumps({
    "single": single[0], "mirrored": mirrored[0], "replicas": mirrored[4],
    "finite": [single[1], mirrored[1]],
    "initial_diff": max(float(np.abs(a - b).max()) for a, b in zip(single[2], mirrored[2])),
    "update": max(float(np.abs(a - b).max()) for a, b in zip(single[2], single[3])),
    "weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(single[3], mirrored[3])),
}))
