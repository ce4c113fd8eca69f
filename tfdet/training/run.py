"""One training run of an Experiment, as scripts/train.py (and any Python caller) starts it:
the strategy the machine calls for (one device, several, or several workers from TF_CONFIG),
each worker reading its own shard, resume from `model_dir`, and the chief's final evaluation.

    from tfdet.config import load_experiment
    from tfdet.training.run import train_experiment
    result, metrics = train_experiment(load_experiment("configs/x.gin"), "runs/x")
"""
import json
import os

import tensorflow as tf

from tfdet.training.checkpoints import write_run_info
from tfdet.training.optimizers import uses_l2_gradients
from tfdet.training.strategy import get_strategy, worker_info
from tfdet.training.trainer import Trainer

# What a collective op raises when a peer worker went away.
_LOST_PEER = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
              tf.errors.AbortedError, tf.errors.CancelledError, tf.errors.InternalError)


class RunError(RuntimeError):
    """A run cannot start or go on; the message says why and what to do."""


class LostWorkerError(RunError):
    """A peer of a multi-worker run went away; rerunning every worker resumes the run."""


class DataNotFoundError(FileNotFoundError):
    """A data set of the run is not where its spec says."""


def sharded_train_dataset(exp, train_set, workers=1, worker=0):
    """`make_dataset(position)` for Trainer.fit: worker `worker`'s shard (every workers-th
    record after the seeded shuffle, so the workers' shards make up one global batch), its
    per-worker batch, resumed at `position` records consumed over all workers."""
    per_worker = exp.train.global_batch_size // workers

    def make_dataset(position):
        shard = (workers, worker) if workers > 1 else None
        ds = exp.train_pipeline(train_set, per_worker, skip=position, shard=shard)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF  # sharded above, by element
        return ds.with_options(options)

    return make_dataset


def train_experiment(exp, model_dir, evaluate=True, strategy=None):
    """Trains exp's model to its schedule's end in model_dir (resuming from its latest
    checkpoint), then, on the chief and when `evaluate`, scores it on exp.data.eval and writes
    eval_<step>.json. Returns (TrainResult, metrics dict or None).

    Raises DataNotFoundError when a data set is absent, RunError when the global batch does
    not split over the workers, LostWorkerError (a RunError) when a peer worker goes away."""
    # First: a multi-worker strategy must exist before TensorFlow runs anything (the readers'
    # image checks decode with TensorFlow).
    strategy = strategy or get_strategy()
    workers, worker, is_chief = worker_info(strategy)
    try:
        train_set = exp.dataset(exp.data.train, exp.data.train_limit)
        # Only the chief evaluates: other workers do not read (decode-check) the eval data.
        eval_set = (exp.dataset(exp.data.eval, exp.data.eval_limit, evaluation=True)
                    if evaluate and is_chief else None)
    except FileNotFoundError as err:
        raise DataNotFoundError(str(err)) from None
    print(f"training data {exp.data.train}: {len(train_set)} images, {train_set.num_classes} "
          f"classes; {train_set.skipped.summary()}")
    if is_chief:
        write_run_info(model_dir, train_set, exp.config_text)
    t = exp.train
    if t.global_batch_size % workers:
        raise RunError(f"the global batch {t.global_batch_size} does not split over "
                       f"{workers} workers")
    if t.seed is not None:  # the initial weights too, not only the data order
        import keras

        keras.utils.set_random_seed(t.seed)
    trainer = Trainer(lambda: exp.build_model(train_set.num_classes), exp.build_optimizer,
                      strategy, model_dir,
                      weight_decay=t.weight_decay if uses_l2_gradients(t.optimizer) else 0.0,
                      nonfinite=t.nonfinite, keep_checkpoints=t.keep_checkpoints,
                      max_consecutive_skips=t.max_consecutive_skips)
    try:
        result = trainer.fit(sharded_train_dataset(exp, train_set, workers, worker),
                             exp.schedule.total_steps, t.global_batch_size,
                             checkpoint_every=t.checkpoint_every, log_every=t.log_every,
                             image_summary_every=t.image_summary_every)
    except _LOST_PEER as err:
        if workers == 1:
            raise
        first = str(getattr(err, "message", err)).strip().splitlines()[0][:300]
        raise LostWorkerError(
            f"worker {worker} of {workers} lost the cluster ({type(err).__name__}: {first}). "
            f"Rerun every worker with the same command: training resumes from the last "
            f"checkpoint in {model_dir}.") from None
    if result.skipped_steps:
        print(f"skipped {result.skipped_steps} steps with a non-finite loss")
    metrics = None
    if eval_set is not None:
        from tfdet.evaluation import evaluate_detector, headline

        # the config's face test applies; test-time augmentation is for eval.py
        predict, pipeline = exp.evaluation_inputs(trainer.model, eval_set, tta=False)
        metrics, _ = evaluate_detector(predict, pipeline, eval_set, metric=exp.data.metric)
        with open(os.path.join(model_dir, f"eval_{result.step}.json"), "w") as out:
            json.dump(dict(metrics, data=exp.data.eval, images=len(eval_set),
                           eval_limit=exp.data.eval_limit, step=result.step), out, indent=1)
        numbers = " ".join(f"{k} {v:.4f}" for k, v in headline(metrics).items())
        limited = (f" (the first {len(eval_set)} images: DataConfig.eval_limit)"
                   if exp.data.eval_limit else "")
        print(f"eval {exp.data.eval}{limited} at step {result.step}: {numbers}")
    return result, metrics
