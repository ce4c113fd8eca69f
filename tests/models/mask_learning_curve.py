"""The Mask R-CNN learning test's curve for one training seed: box and mask AP50 on its
images at a half, three quarters, seven eighths and the end of STEPS (BENCHMARKS.md).

    python -m tests.models.mask_learning_curve SEED STEPS [gin bindings...]
"""
import sys

from tests.models.learning_curve import curve
from tests.models.test_mask_rcnn_learning import experiment

if __name__ == "__main__":
    seed, steps = int(sys.argv[1]), int(sys.argv[2])
    exp, images = experiment(steps, [f"TrainConfig.seed = {seed}", *sys.argv[3:]])
    curve(exp, images, steps, {steps // 2, steps * 3 // 4, steps * 7 // 8, steps}, seed)
