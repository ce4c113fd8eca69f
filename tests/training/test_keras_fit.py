"""model.compile + model.fit train any detector with the losses train.py uses, and Keras
callbacks (ModelCheckpoint, TensorBoard) work."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet import data, models


def _pipeline(size=128, batch=2):
    sample = data.load_sample_dataset("train")
    transform = data.detection_transforms(False, size, size)
    return data.input_pipeline(sample, transform, batch, training=True, seed=0,
                               pad_size=(size, size)), sample.num_classes


@pytest.mark.parametrize("name,overrides", [
    ("retinanet_r50_fpn", dict(depth=18, norm="bn", freeze_at=0, fpn_channels=32)),
    ("yolov3_mobilenet_v1", dict(width=0.25)),
])
def test_fit_logs_compute_losses_and_callbacks_write_checkpoints_and_summaries(
        name, overrides, tmp_path):
    keras.utils.set_random_seed(0)
    pipeline, num_classes = _pipeline()
    batch = next(iter(pipeline))
    model = models.get(name, num_classes=num_classes, **overrides)
    before = {k: float(v) for k, v in model.compute_losses(batch, training=True).items()}
    weights = [w.numpy() for w in model.trainable_weights]
    # LR 0: the logged losses are compute_losses' on that batch, and nothing moves.
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    logged = {k: v[-1] for k, v in history.history.items()}
    assert set(logged) == set(before)
    for key, value in before.items():
        assert logged[key] == pytest.approx(value, rel=1e-4), key
    assert all(np.array_equal(w.numpy(), v) for w, v in zip(model.trainable_weights, weights))
    # A real optimizer: weights move, the loss is finite, callbacks write their files.
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    callbacks = [keras.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"),
                                                 save_weights_only=True),
                 keras.callbacks.TensorBoard(str(tmp_path / "tb"))]
    history = model.fit(pipeline, steps_per_epoch=2, epochs=1, verbose=0, callbacks=callbacks)
    assert np.isfinite(history.history["total_loss"][-1])
    assert any(not np.array_equal(w.numpy(), v) for w, v in zip(model.trainable_weights,
                                                                  weights))
    assert (tmp_path / "w.weights.h5").exists() and any((tmp_path / "tb").rglob("*.v2"))
