"""The Mask R-CNN learning test's curve for one training seed: box and mask AP50 on its
images at a half, three quarters, seven eighths and the end of STEPS (BENCHMARKS.md).

    python -m tests.models.mask_learning_curve SEED STEPS [gin bindings...]
"""
import sys

import keras

from tests.models.test_mask_rcnn_learning import experiment
from tfdet.evaluation import compiled_predictor, evaluate_detector
from tfdet.training import Trainer

seed, steps = int(sys.argv[1]), int(sys.argv[2])
exp, images = experiment(steps, [f"TrainConfig.seed = {seed}", *sys.argv[3:]])
keras.utils.set_random_seed(seed)
trainer = Trainer(lambda: exp.build_model(images.num_classes), exp.build_optimizer)
batches = iter(exp.train_pipeline(images, exp.train.global_batch_size))
predict = None
for step in range(1, steps + 1):
    trainer.train_step(next(batches))
    if step in (steps // 2, steps * 3 // 4, steps * 7 // 8, steps):
        predict = predict or compiled_predictor(trainer.model)
        m, _ = evaluate_detector(predict, exp.eval_pipeline(images, 4), images, verbose=False,
                                 progress=False)
        print(f"seed {seed} step {step}: box AP50 {m['AP50']:.3f}, mask AP50 "
              f"{m['mask_AP50']:.3f}", flush=True)
