"""Cascade R-CNN with deformable convolution learns: the cascade_rcnn_dcn_r50_fpn_1x row with a
ResNet-18 body (DCNv2 in every 3x3 conv of res3-res5, as the row's R50) from scratch on 16
raccoon images reaches AP50 >= 0.9 on them. This one test covers the R-CNN box path (RPN,
RoI heads, their losses: Faster R-CNN is this without the two later stages, and Mask R-CNN's
learning test trains it too), the cascade's three stages at IoU 0.5 / 0.6 / 0.7 as the zoo's,
and DCN's training (offsets and masks learnt from zero).

The quickstart recipe (trainable BN, AdamW 1e-3 with a 50-step warmup, batch 8) at 128 px with
a 64-channel FPN, 256-wide 2fc heads, 128 sampled RoIs and fewer proposals than the zoo's.
Measured on a 2-core Xeon (AVX-512), `learning_curve cascade 128 16 60 10
"ModelConfig.name = 'cascade_rcnn_dcn_r50_fpn_1x'"`: AP50 0.41 / 0.71 / 0.88 / 0.86 / 0.96 /
1.0 after 10 ... 60 steps (the LR x0.1 from step 45, which this test does not have). The
plain cascade on the same recipe: 0.64 / 0.993 / 1.0 / 1.0 after 20 / 40 / 60 / 80; Faster
R-CNN DCN (this test's row before): 0.75 / 0.87 / 0.997 / 1.0 after 20 / 40 / 60 / 80.
At 96 px the DCN cascade was noisier (0.97 at 50, 0.90 at 60, 1.0 at 70). With one intra-op
thread (the suite's setting, whose rounding stands in for another CPU) the 60-step run ended
at 0.85; over 80 steps (decay at 60): 0.70 / 0.82 / 0.79 / 0.85 / 1.0 / 1.0 at 20 ... 80. AP50
settles 10 steps after the decay: 80 steps is the budget, with the decay at 60 (a run
without it, as this test was before, ended at 0.656 on a Zen 3).
On a 2-core Zen 3 (AVX2, no AVX-512), one thread, `learning_curve cascade 128 16 80 10
"ModelConfig.name = 'cascade_rcnn_dcn_r50_fpn_1x'"`: 0.40 / 0.62 / 0.89 / 0.91 / 0.94 / 0.94 /
0.997 / 0.997 after 10 ... 80 steps with oneDNN's kernels (217 s of training); with Eigen's (TF's
default there before tfdet turned oneDNN on) 0.43 / 0.67 / 0.83 / 0.95 / 0.96 / 0.93 / 1.0 / 1.0
(465 s beside another job).

The curves above were measured while a head / neck handed one initializer instance to all its
convs (identical starting kernels, mended in 984f306); the test passes with a draw per conv.
"""
from tests.models._learning import RCNN_R18, SMALL_RACCOON_128, train_on_16_raccoons

STEPS = 80


def test_cascade_rcnn_dcn_r18_reaches_ap50_09_on_16_raccoon_images():
    metrics, losses = train_on_16_raccoons([
        "ModelConfig.name = 'cascade_rcnn_dcn_r50_fpn_1x'",
        RCNN_R18, "DataConfig.size_divisor = 32", *SMALL_RACCOON_128,
        f"ScheduleConfig.total_steps = {STEPS}", f"ScheduleConfig.milestones = ({STEPS - 20},)",
    ], STEPS)
    assert metrics["AP50"] >= 0.9, (metrics, losses)
