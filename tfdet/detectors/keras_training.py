"""Keras-native training for every detector: `model.compile(optimizer=...)` then
`model.fit(dataset)` runs a train_step built on the detector's own `compute_losses`, the losses
scripts/train.py trains with, so Keras callbacks (ModelCheckpoint, TensorBoard, early
stopping, ...) work. scripts/train.py (tfdet.training.Trainer) stays the reference loop for the
zoo's schedules, L2 decay, non-finite-loss handling, resumable data and multi-worker runs.
"""
import tensorflow as tf


class KerasTrainingMixin:
    """train_step / test_step for keras.Model.fit / evaluate on tfdet's pipeline batches
    (dicts with images, boxes, classes, is_crowd, ...; tfdet.data.input_pipeline). The logs are
    the step's named losses (total_loss and its terms)."""

    def compile(self, *args, jit_compile=False, **kwargs):
        # XLA is opt-in: not every detector's loss compiles under it (NMS, dynamic shapes).
        return super().compile(*args, jit_compile=jit_compile, **kwargs)

    @staticmethod
    def _batch(data):
        return data[0] if isinstance(data, (tuple, list)) else data

    def train_step(self, data):
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            losses = self.compute_losses(self._batch(data), training=True)
            # Each replica's losses are already normalised over the global batch (replica
            # means of the positive counts); Keras sums the replicas' gradients.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = losses["total_loss"] / replicas
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables) if g is not None])
        return losses

    def test_step(self, data):
        return self.compute_losses(self._batch(data), training=False)
