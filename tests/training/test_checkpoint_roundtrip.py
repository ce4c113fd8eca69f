"""Every detector family's checkpoint holds all of its weights: a model restored from another
one's checkpoint has exactly that model's weights (no layer silently left out)."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import models

SMALL = {
    "retinanet_r50_fpn": dict(depth=18, norm="bn", fpn_channels=32),
    "faster_rcnn_r50_fpn": dict(depth=18, norm="bn", fpn_channels=32, fc_dim=64),
    "mask_rcnn_r50": dict(depth=18, norm="bn"),
    "ssd_mobilenet_v1_voc": dict(image_size=128, width=0.25),
    "yolov3_mobilenet_v1": dict(width=0.25),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_checkpoint_restores_every_weight(name, tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    source = models.get(name, num_classes=2, **SMALL[name])
    for w in source.non_trainable_weights:  # BN statistics too, not just the initial ones
        w.assign(w + 0.5)
    path = tf.train.Checkpoint(model=source).write(str(tmp_path / "ckpt"))
    keras.utils.set_random_seed(2)
    target = models.get(name, num_classes=2, **SMALL[name])
    tf.train.Checkpoint(model=target).read(path).assert_consumed()
    assert len(target.weights) == len(source.weights)
    for a, b in zip(source.weights, target.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
