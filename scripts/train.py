"""Trains a zoo model from a gin config, under the strategy the machine calls for.

  python scripts/train.py --config configs/retinanet_r50_fpn_1x.gin [--model_dir runs/X]
      [--train_data SPEC] [--eval_data SPEC] [--steps N] [--batch_size N]
      [--gin_bindings "TrainConfig.checkpoint_every = 500"]

Rerunning with the same --model_dir resumes from its latest checkpoint (step, LR and data
position). At the end it evaluates on the eval data (COCO AP) and prints the checkpoint path.
"""
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("config", None, "gin config file (configs/<zoo row>.gin; default: the "
                    "--checkpoint folder's config.gin)")
flags.DEFINE_string("checkpoint", None, "initialise the model from this checkpoint or run folder "
                    "(fine-tuning, e.g. converted PaddleDetection weights)")
flags.DEFINE_multi_string("gin_bindings", [], "extra gin bindings, applied after the file")
flags.DEFINE_bool("allow_config_imports", False,
                  "let the config and bindings import modules (gin runs their code)")
flags.DEFINE_string("model_dir", None, "checkpoints and logs (default runs/<config name>)")
flags.DEFINE_string("train_data", None, "training data spec (default: the config's)")
flags.DEFINE_string("eval_data", None, "evaluation data spec (default: the config's)")
flags.DEFINE_integer("steps", None, "total steps; milestones and warmup scale with it")
flags.DEFINE_integer("batch_size", None, "global batch size (the LR scales linearly)")
flags.DEFINE_bool("eval", True, "evaluate the final model on the eval data")


def main(_):
    import tensorflow as tf

    from tfdet.config import load_experiment
    from tfdet.evaluation import compiled_predictor, evaluate_detector, headline
    from tfdet.training import (Trainer, get_strategy, resolve_checkpoint, config_for,
                                uses_l2_gradients, write_run_info)
    from tfdet.training.strategy import worker_info

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    f = flags.FLAGS
    # First: a multi-worker strategy must exist before TensorFlow runs anything (the readers'
    # image checks decode with TensorFlow).
    strategy = get_strategy()
    workers, worker, is_chief = worker_info(strategy)
    config = config_for(f.config, f.checkpoint)
    exp = load_experiment(config, f.gin_bindings, allow_imports=f.allow_config_imports)
    if f.checkpoint:
        exp.model.weights = resolve_checkpoint(f.checkpoint)
    if f.train_data:
        exp.data.train = f.train_data
    if f.eval_data:
        exp.data.eval = f.eval_data
    if f.batch_size:
        exp.train.global_batch_size = f.batch_size
    if f.steps:
        exp = exp.with_steps(f.steps)
    model_dir = f.model_dir or os.path.join(
        "runs", os.path.splitext(os.path.basename(config))[0])

    try:
        train_set = exp.dataset(exp.data.train, exp.data.train_limit)
        eval_set = exp.dataset(exp.data.eval, evaluation=True) if f.eval else None
    except FileNotFoundError as err:  # the data set is not where the config says
        sched = exp.schedule
        raise SystemExit(
            f"error: {err}. The schedule is {sched.total_steps} steps of "
            f"{exp.train.global_batch_size} images: --steps N compresses it, milestones and "
            f"warmup scaled, and --batch_size B changes the batch.") from None
    print(f"training data {exp.data.train}: {len(train_set)} images, {train_set.num_classes} "
          f"classes; {train_set.skipped.summary()}")
    if is_chief:
        write_run_info(model_dir, train_set, exp.config_text)

    t = exp.train
    if t.global_batch_size % workers:
        raise SystemExit(f"error: the global batch {t.global_batch_size} does not split over "
                         f"{workers} workers")
    per_worker = t.global_batch_size // workers

    def make_dataset(position):
        shard = (workers, worker) if workers > 1 else None
        # position: records consumed over all workers, before any filtering.
        ds = exp.train_pipeline(train_set, per_worker, skip=position, shard=shard)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF  # sharded above, by element
        return ds.with_options(options)

    if t.seed is not None:  # the initial weights too, not only the data order
        import keras

        keras.utils.set_random_seed(t.seed)
    trainer = Trainer(lambda: exp.build_model(train_set.num_classes), exp.build_optimizer,
                      strategy, model_dir,
                      weight_decay=t.weight_decay if uses_l2_gradients(t.optimizer) else 0.0,
                      nonfinite=t.nonfinite, keep_checkpoints=t.keep_checkpoints,
                      max_consecutive_skips=t.max_consecutive_skips)
    lost_peer = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                 tf.errors.AbortedError, tf.errors.CancelledError, tf.errors.InternalError)
    try:
        result = trainer.fit(make_dataset, exp.schedule.total_steps, t.global_batch_size,
                             checkpoint_every=t.checkpoint_every, log_every=t.log_every,
                             image_summary_every=t.image_summary_every)
    except lost_peer as err:
        if workers == 1:
            raise
        first = str(getattr(err, "message", err)).strip().splitlines()[0][:300]
        raise SystemExit(
            f"error: worker {worker} of {workers} lost the cluster ({type(err).__name__}: "
            f"{first}). Rerun every worker with the same command: training resumes from the "
            f"last checkpoint in {model_dir}.") from None
    if result.skipped_steps:
        print(f"skipped {result.skipped_steps} steps with a non-finite loss")
    if eval_set is not None and is_chief:
        metrics, _ = evaluate_detector(compiled_predictor(trainer.model),
                                       exp.eval_pipeline(eval_set), eval_set,
                                       metric=exp.data.metric)
        with open(os.path.join(model_dir, f"eval_{result.step}.json"), "w") as out:
            json.dump(dict(metrics, data=exp.data.eval, step=result.step), out, indent=1)
        numbers = " ".join(f"{k} {v:.4f}" for k, v in headline(metrics).items())
        print(f"eval {exp.data.eval} at step {result.step}: {numbers}")
    print(f"final checkpoint: {result.checkpoint}")


if __name__ == "__main__":
    app.run(main)
