"""Losses against numpy formulas and hand values."""
import numpy as np
import pytest

from tfdet.losses import iou_loss, sigmoid_focal_loss, smooth_l1_loss


def test_focal_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (50,)).astype(np.float32)
    targets = (rng.uniform(size=50) > 0.7).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    p_t = np.where(targets == 1, p, 1 - p)
    alpha_t = np.where(targets == 1, 0.25, 0.75)
    ref = -alpha_t * (1 - p_t) ** 2 * np.log(p_t)
    np.testing.assert_allclose(sigmoid_focal_loss(logits, targets).numpy(), ref, rtol=1e-4,
                               atol=1e-7)
    # gamma 0, no alpha: plain binary cross-entropy.
    np.testing.assert_allclose(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0).numpy(),
                               -np.log(p_t), rtol=1e-4, atol=1e-6)


def test_smooth_l1_hand_values():
    got = smooth_l1_loss([0.0, 0.05, 1.0, -2.0], [0.0, 0.0, 0.0, 0.0], beta=0.11).numpy()
    np.testing.assert_allclose(got, [0, 0.5 * 0.05**2 / 0.11, 1 - 0.055, 2 - 0.055], rtol=1e-5)
    np.testing.assert_allclose(smooth_l1_loss([3.0], [1.0], beta=0).numpy(), [2.0])


def test_iou_losses():
    a, b = [[0, 0, 10, 10]], [[5, 0, 15, 10]]
    assert iou_loss(a, a, "giou").numpy()[0] == pytest.approx(0.0, abs=1e-6)
    assert iou_loss(a, b, "iou").numpy()[0] == pytest.approx(1 - 50 / 150)
    assert iou_loss(a, [[20, 0, 30, 10]], "giou").numpy()[0] == pytest.approx(1 + 1 / 3)
