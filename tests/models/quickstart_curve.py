"""The README main job's curve: sample-val AP50 of the quickstart config at given steps, for
choosing its recipe (BENCHMARKS.md, "The main job").

    python -m tests.models.quickstart_curve STEPS AT1,AT2,... [gin bindings...]

Trains configs/quickstart/retinanet_r18_sample.gin (with the bindings; its schedule stretched
to STEPS unless the bindings set milestones) on sample:train from seed 0 and prints one JSON
line per step in AT (AP50 / AP on sample:val, loss, training seconds, wall seconds).
`DataConfig.train_limit = 96` gives the 96 training images of sample data v1.
"""
import sys
import time

from tests.models.learning_curve import curve
from tests.training.test_trainer import QUICKSTART
from tfdet.config import load_experiment


def main(argv):
    steps, at = int(argv[1]), [int(a) for a in argv[2].split(",")]
    exp = load_experiment(QUICKSTART, argv[3:])
    if exp.schedule.total_steps != steps:
        exp = exp.with_steps(steps)
    train = exp.dataset(exp.data.train, exp.data.train_limit)
    val = exp.dataset(exp.data.eval, evaluation=True)
    print(f"{len(train)} training images, {len(val)} val images", flush=True)
    curve(exp, train, steps, at, eval_images=val)


if __name__ == "__main__":
    t0 = time.time()
    main(sys.argv)
    print(f"{time.time() - t0:.0f} s", flush=True)
