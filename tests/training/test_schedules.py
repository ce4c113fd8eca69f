"""LR schedule, linear scaling and L2 decay against hand-computed values."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet.training import WarmupPiecewise, l2_gradients, scaled_lr


def test_warmup_then_piecewise_decay_by_hand():
    lr = WarmupPiecewise(0.02, milestones=(60000, 80000), gamma=0.1, warmup_steps=1000,
                         warmup_factor=1 / 3)
    expected = {0: 0.02 / 3, 500: 0.02 * (1 / 3 + 2 / 3 * 0.5), 1000: 0.02, 59999: 0.02,
                60000: 0.002, 79999: 0.002, 80000: 0.0002, 90000: 0.0002}
    for step, value in expected.items():
        assert float(lr(step)) == pytest.approx(value, rel=1e-6), step


def test_schedule_rejects_unsorted_milestones():
    with pytest.raises(ValueError, match="increasing"):
        WarmupPiecewise(0.1, milestones=(10, 5))


def test_linear_scaling_rule():
    assert scaled_lr(0.01, 16, 2) == pytest.approx(0.00125)
    assert scaled_lr(0.02, 16, 64) == pytest.approx(0.08)


def test_l2_decays_kernels_and_biases_not_norm_parameters():
    import keras

    dense = keras.layers.Dense(2)
    norm = keras.layers.BatchNormalization()
    dense.build((None, 3))
    norm.build((None, 2))
    variables = dense.trainable_variables + norm.trainable_variables
    grads = [tf.zeros_like(v) for v in variables]
    decayed = l2_gradients(grads, variables, 0.5)
    for g, v in zip(decayed, variables):
        expect = 0.5 * v.numpy() if v.name in ("kernel", "bias") else np.zeros(v.shape)
        np.testing.assert_allclose(g.numpy(), expect, atol=1e-7)
