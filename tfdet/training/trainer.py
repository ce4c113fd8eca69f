"""The training loop: a distributed train step, checkpoints, resume, logging.

    trainer = Trainer(build_model, build_optimizer, strategy, model_dir, weight_decay=1e-4)
    result = trainer.fit(make_dataset, total_steps, checkpoint_every=2500)

`build_model` / `build_optimizer` are called inside the strategy's scope.
`make_dataset(position)` returns this worker's `tf.data.Dataset` of batches, positioned after
`position` records (a seeded pipeline with skip = position). The position is the number of
records consumed, counted before any filtering: one past the largest `position` a batch
carried (the input pipeline numbers its records), or steps x global batch for batches
without one; it is saved beside each checkpoint (data_positions.json) for resuming. One worker
yields the global batch (split over its local replicas); under multi-worker training each
worker yields its share, global batch / workers (one replica per worker). A detector provides
`compute_losses(batch, training=True)` returning a dict of scalar losses with 'total_loss'.
Only the chief writes checkpoints and summaries; the other workers save to scratch folders
that they delete (every worker takes part in a save).

A checkpoint holds the model, the optimizer (with its iteration count, hence the LR), the step
(the data position) and the count of skipped steps. TF writes checkpoint files under temporary
names and then updates the `checkpoint` index atomically, so a run killed at any moment leaves
the previous checkpoint usable; rerunning with the same model_dir resumes from it.
"""
import dataclasses
import json
import logging
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfdet._quiet import is_terminal, tf_info_muted
from tfdet.data.pipeline import release_iterator
from tfdet.training.optimizers import l2_gradients, set_lr_multipliers
from tfdet.training.strategy import describe, worker_info

logger = logging.getLogger("tfdet.training")
POSITIONS_FILE = "data_positions.json"  # checkpoint name -> records consumed


def _read_positions(model_dir):
    try:
        with open(os.path.join(model_dir, POSITIONS_FILE), encoding="utf-8") as f:
            positions = json.load(f)
        return positions if isinstance(positions, dict) else {}
    except (OSError, ValueError):
        return {}


class NonFiniteLossError(FloatingPointError):
    """A train step produced a NaN or infinite loss."""


@dataclasses.dataclass
class TrainResult:
    step: int
    checkpoint: str
    skipped_steps: int
    losses: dict


class Trainer:
    """Owns the model, optimizer and checkpoint of one run; see the module docstring.

    weight_decay: the zoo's L2 decay added to the gradients (use 0 with AdamW, which decays
    on its own). nonfinite: 'error' raises NonFiniteLossError naming the step and the loss
    terms; 'skip' leaves the weights (norm statistics included) unchanged for that step and
    counts it, and stops after more than `max_consecutive_skips` such steps in a row. Either
    way a non-finite step never updates the model, and an update that leaves any weight
    non-finite stops the run before a checkpoint holds it.
    """

    def __init__(self, build_model, build_optimizer, strategy=None, model_dir=None,
                 weight_decay=0.0, nonfinite="error", keep_checkpoints=5, jit_compile=False,
                 max_consecutive_skips=10):
        if nonfinite not in ("error", "skip"):
            raise ValueError(f"nonfinite must be 'error' or 'skip', got {nonfinite!r}")
        self.max_consecutive_skips = max_consecutive_skips
        self.strategy = strategy or tf.distribute.get_strategy()
        self.model_dir = model_dir
        self.weight_decay = weight_decay
        self.nonfinite = nonfinite
        self.jit_compile = jit_compile
        with self.strategy.scope():
            self.model = build_model()
            self.optimizer = build_optimizer()
            self.optimizer.build(self.model.trainable_variables)
            multipliers = getattr(self.model, "lr_multipliers", list)()
            if multipliers:  # e.g. the face backbones' 0.1 (Paddle's conv_lr)
                set_lr_multipliers(self.optimizer, multipliers)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                              step=self.step, skipped=self.skipped)
        self.manager = None
        self.num_workers, self.worker_index, self.is_chief = worker_info(self.strategy)
        self.restored_position = None  # records consumed, from the restored checkpoint
        self.last_position = -1  # the largest record number of the last batch (-1: none)
        self._scratch = None
        if model_dir:
            self.manager = tf.train.CheckpointManager(self.checkpoint, model_dir,
                                                      max_to_keep=keep_checkpoints)
            if not self.is_chief:
                # Every worker takes part in a save; only the chief's lands in model_dir.
                self._scratch = os.path.join(model_dir, f".worker-{self.worker_index}")
                self._scratch_manager = tf.train.CheckpointManager(
                    self.checkpoint, self._scratch, max_to_keep=1)
        self._train_step = None

    @property
    def num_replicas(self):
        return self.strategy.num_replicas_in_sync

    def restore(self):
        """Restores the newest readable checkpoint in model_dir, if any; returns the step.

        A checkpoint that cannot be read (a truncated or damaged file) is passed over with a
        warning naming it, and the one before it is used."""
        if not (self.manager and self.manager.checkpoints):
            return int(self.step.numpy())
        problems = []
        for path in reversed(self.manager.checkpoints):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except Exception as err:  # noqa: BLE001 - any unreadable checkpoint
                problems.append(f"{path}: {type(err).__name__}: {err}")
                logger.warning("checkpoint %s is unreadable (%s: %s); trying the one before it",
                               path, type(err).__name__, str(err).splitlines()[0][:200])
                continue
            logger.info("resumed from %s at step %d", path, int(self.step.numpy()))
            self.restored_position = _read_positions(self.model_dir).get(
                os.path.basename(path))
            return int(self.step.numpy())
        raise RuntimeError(f"no checkpoint in {self.model_dir} could be read:\n"
                           + "\n".join(problems))

    def save(self, data_position=None):
        """Writes a checkpoint numbered by the step, and the data position (records consumed)
        beside it; returns its path (the chief's)."""
        number = int(self.step.numpy())
        if self.is_chief:
            with tf_info_muted():  # no INFO line about checkpoint sharding per save
                path = self.manager.save(checkpoint_number=number)
            if data_position is not None:
                positions = _read_positions(self.model_dir)
                kept = {os.path.basename(p) for p in self.manager.checkpoints}
                positions = {k: v for k, v in positions.items() if k in kept}
                positions[os.path.basename(path)] = int(data_position)
                tmp = os.path.join(self.model_dir, POSITIONS_FILE + ".tmp")
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(positions, f)
                os.replace(tmp, os.path.join(self.model_dir, POSITIONS_FILE))
            return path
        self._scratch_manager.save(checkpoint_number=number)
        tf.io.gfile.rmtree(self._scratch)
        return os.path.join(self.model_dir, f"ckpt-{number}")

    def traces(self):
        """How many times the training step was traced (compiled) so far; 0 before the
        first step. A second input size adds one trace, later sizes none."""
        step = self._train_step
        return 0 if step is None else step.experimental_get_tracing_count()

    def learning_rate(self):
        lr = self.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)

    # -- the step ----------------------------------------------------------------------------
    def _replica_step(self, batch):
        model, replicas = self.model, self.num_replicas
        variables = model.trainable_variables
        # Norm statistics move in the forward pass; a skipped step puts them back.
        state = model.non_trainable_variables
        saved = [tf.identity(v) for v in state]
        with tf.GradientTape() as tape:
            losses = model.compute_losses(batch, training=True)
            scaled = losses["total_loss"] / replicas
        grads = tape.gradient(scaled, variables)
        # Gradients are summed over replicas, so each adds its share of the decay.
        grads = l2_gradients(grads, variables, self.weight_decay / replicas)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in losses.values()])
        ctx = tf.distribute.get_replica_context()
        failed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(~finite, tf.float32))
        all_finite = failed == 0

        self._apply_if(all_finite, grads, variables)
        for variable, value in zip(state, saved):
            variable.assign(tf.where(all_finite, variable, value))
        # A finite loss can still make an update that overflows: the loop stops on it.
        weights_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                                        for v in variables])
        return {k: v / replicas for k, v in losses.items()}, all_finite, weights_finite

    def _apply_if(self, condition, grads, variables):
        """optimizer.apply_gradients when `condition` (the same on every replica) holds.

        apply_gradients synchronises replicas (merge_call), which TF allows in a cond only in
        cross-replica context: so the cond is built there and the update runs per replica.
        """
        def apply(grads):
            self.optimizer.apply_gradients(zip(grads, variables))

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(condition, lambda: apply(grads), lambda: None)
            return

        def cross_replica(distribution, condition, grads):
            first = distribution.experimental_local_results(condition)[0]
            tf.cond(first,
                    lambda: distribution.extended.call_for_each_replica(apply, args=(grads,)),
                    lambda: None)

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(condition, grads))

    def train_step(self, distributed_batch):
        """One step on a batch from `strategy.experimental_distribute_dataset`.

        Returns (losses dict of floats for the global batch, finite bool)."""
        if self._train_step is None:
            # reduce_retracing: after a second input size the step is traced once for any
            # size (YOLOv3's random input size per batch), not once per size.
            @tf.function(jit_compile=self.jit_compile, reduce_retracing=True, autograph=False)
            def step_fn(batch):
                losses, finite, weights_finite = self.strategy.run(self._replica_step,
                                                                   args=(batch,))
                losses = {k: self.strategy.reduce("SUM", v, axis=None)
                          for k, v in losses.items()}
                finite = self.strategy.experimental_local_results(finite)[0]
                weights_finite = tf.reduce_all(
                    self.strategy.experimental_local_results(weights_finite))
                self.step.assign_add(1)
                self.skipped.assign_add(tf.cast(~finite, tf.int64))
                position = tf.constant(-1, tf.int64)
                if isinstance(batch, dict) and "position" in batch:  # the last record used
                    def largest(b):  # over every replica (ReduceOp has no MAX: gather them)
                        ctx = tf.distribute.get_replica_context()
                        return tf.reduce_max(ctx.all_gather(
                            tf.reduce_max(b["position"])[None], axis=0))

                    position = self.strategy.experimental_local_results(
                        self.strategy.run(largest, args=(batch,)))[0]
                return losses, finite, weights_finite, position
            self._train_step = step_fn
        losses, finite, weights_finite, position = self._train_step(distributed_batch)
        self.last_position = int(position)
        if not bool(weights_finite):
            raise NonFiniteLossError(
                f"step {int(self.step.numpy())}: the update made weights non-finite (loss "
                f"{', '.join(f'{k}={float(v):.4g}' for k, v in losses.items())}); no "
                f"checkpoint was written from them. Lower the LR or lengthen the warmup.")
        return {k: float(v) for k, v in losses.items()}, bool(finite)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, make_dataset, total_steps, global_batch_size, checkpoint_every=2500,
            log_every=20, image_summary_every=0, verbose=1):
        """Trains until `total_steps` (resuming from model_dir); returns a TrainResult."""
        start = self.restore()
        if global_batch_size % self.num_replicas:
            raise ValueError(f"global batch {global_batch_size} is not divisible by "
                             f"{self.num_replicas} replicas")
        logger.info("%s; global batch %d, %d per replica; steps %d..%d",
                    describe(self.strategy), global_batch_size,
                    global_batch_size // self.num_replicas, start, total_steps)
        # The data position: records consumed, as the checkpoint recorded it (older runs:
        # steps x global batch).
        position = self.restored_position
        position = start * global_batch_size if position is None else position
        dataset = make_dataset(position)
        if self.num_workers > 1:
            # This worker's share of each global batch, fed to its replica as it is.
            # (experimental_distribute_dataset would take it for the global batch and split
            # it again over every replica of the cluster: half the batch per step.)
            iterator = iter(self.strategy.distribute_datasets_from_function(
                lambda context: dataset))
        else:  # one worker: the global batch, split over its local replicas
            iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train")) \
            if self.model_dir and self.is_chief else None
        progress = _Progress(total_steps, verbose, start)
        losses, last_saved, consecutive = {}, None, 0
        for step in range(start + 1, total_steps + 1):
            batch = next(iterator)
            losses, finite = self.train_step(batch)
            position = (self.last_position + 1 if self.last_position >= 0
                        else position + global_batch_size)
            consecutive = 0 if finite else consecutive + 1
            if not finite:
                terms = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
                if self.nonfinite == "skip" and consecutive > self.max_consecutive_skips:
                    raise NonFiniteLossError(
                        f"step {step}: {consecutive} steps in a row had a non-finite loss "
                        f"({terms}); stopping (max_consecutive_skips = "
                        f"{self.max_consecutive_skips}). The last checkpoint holds the "
                        f"weights from before them.")
                if self.nonfinite == "error":
                    raise NonFiniteLossError(
                        f"step {step}: non-finite loss ({terms}); the weights of this step were "
                        f"not updated and no checkpoint was written. Lower the LR, lengthen "
                        f"the warmup, or pass nonfinite='skip' (TrainConfig.nonfinite).")
                logger.warning("step %d: non-finite loss (%s), update skipped", step, terms)
            lr = self.learning_rate()
            shown = {k: v for k, v in losses.items() if np.isfinite(v)}
            skipped = int(self.skipped.numpy())
            progress.update(step, dict(shown, lr=lr, **({"skipped": skipped} if skipped else {})))
            if writer and (step % log_every == 0 or step == total_steps):
                with writer.as_default(step=step):
                    for name, value in shown.items():
                        tf.summary.scalar(f"loss/{name}", value)
                    tf.summary.scalar("learning_rate", lr)
                    tf.summary.scalar("skipped_steps", skipped)
            if writer and image_summary_every and step % image_summary_every == 0:
                self._image_summary(writer, batch, step)
            if self.manager and (step % checkpoint_every == 0 or step == total_steps):
                last_saved = self.save(position)
        if self.manager and last_saved is None:
            last_saved = self.manager.latest_checkpoint or self.save()
        if writer:
            writer.flush()
        holder = [iterator]
        del iterator
        release_iterator(holder)
        return TrainResult(step=int(self.step.numpy()), checkpoint=last_saved,
                           skipped_steps=int(self.skipped.numpy()), losses=losses)

    def _image_summary(self, writer, distributed_batch, step, max_images=3):
        """Up to three training images, each as ground truth | the model's current detections
        (score >= 0.3), labelled boxes in per-class colours (tfdet.visualize)."""
        from tfdet import visualize
        batch = self.strategy.experimental_local_results(distributed_batch)[0]
        images = batch["images"][:max_images]
        detections = self.model(images, training=False)
        low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
        shown = tf.cast((images - low) / tf.maximum(high - low, 1e-6) * 255, tf.uint8).numpy()
        k = int(getattr(self.model, "num_classes", 1))
        pictures = []
        for i, image in enumerate(shown):
            n = int(batch["num_boxes"][i]) if "num_boxes" in batch else 0
            truth = visualize.draw_detections(image, batch["boxes"][i, :n].numpy(),
                                              batch["classes"][i, :n].numpy(), num_classes=k)
            found = visualize.draw_detections(
                image, detections["boxes"][i].numpy(), detections["classes"][i].numpy(),
                detections["scores"][i].numpy(), score_threshold=0.3, num_classes=k)
            pictures.append(visualize.side_by_side(truth, found))
        with writer.as_default(step=step):
            tf.summary.image("truth_vs_detections", np.stack(pictures), max_outputs=max_images)


class _Progress:
    """Keras' progress bar on a terminal; elsewhere (a log file, CI) one plain line every 30 s
    and at the last step: `step S/T: name value ...`, no control characters."""

    def __init__(self, total, verbose, start, interval=30.0):
        self.total, self.verbose, self.interval = total, verbose, interval
        self.terminal = is_terminal(sys.stdout)
        self.last = time.monotonic()
        if self.terminal:
            self.bar = keras.utils.Progbar(total, verbose=verbose,
                                           stateful_metrics=["lr", "skipped"])
            self.bar.update(start)

    def update(self, step, values):
        if self.terminal:
            self.bar.update(step, list(values.items()))
            return
        now = time.monotonic()
        if self.verbose and (now - self.last >= self.interval or step == self.total):
            self.last = now
            shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
            print(f"step {step}/{self.total}: {shown}", flush=True)
