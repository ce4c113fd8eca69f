"""Trains a zoo model from a gin config, under the strategy the machine calls for.

  python scripts/train.py --config configs/retinanet_r50_fpn_1x.gin [--model_dir runs/X]
      [--train_data SPEC] [--eval_data SPEC] [--steps N] [--batch_size N]
      [--gin_bindings "TrainConfig.checkpoint_every = 500"]

Rerunning with the same --model_dir resumes from its latest checkpoint (step, LR and data
position). At the end it evaluates on the eval data (COCO AP) and prints the checkpoint path.
"""
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfdet import cli  # noqa: E402

cli.define_config_flags(checkpoint_help="initialise the model from this checkpoint or run "
                        "folder (fine-tuning, e.g. converted PaddleDetection weights)")
flags.DEFINE_string("model_dir", None, "checkpoints and logs (default runs/<config name>)")
flags.DEFINE_string("train_data", None, "training data spec (default: the config's)")
flags.DEFINE_string("eval_data", None, "evaluation data spec (default: the config's)")
flags.DEFINE_integer("steps", None, "total steps; milestones and warmup scale with it")
flags.DEFINE_integer("batch_size", None, "global batch size (the LR scales linearly)")
flags.DEFINE_bool("eval", True, "evaluate the final model on the eval data")


def main(_):
    from tfdet.training import resolve_checkpoint
    from tfdet.training.run import DataNotFoundError, RunError, train_experiment

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    f = flags.FLAGS
    config, exp = cli.experiment_from_flags(f)
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
        result, _ = train_experiment(exp, model_dir, evaluate=f.eval)
    except DataNotFoundError as err:
        raise SystemExit(
            f"error: {err}. The schedule is {exp.schedule.total_steps} steps of "
            f"{exp.train.global_batch_size} images: --steps N compresses it, milestones and "
            f"warmup scaled, and --batch_size B changes the batch.") from None
    except RunError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"final checkpoint: {result.checkpoint}")


if __name__ == "__main__":
    app.run(main)
