"""Argmax matcher and balanced sampler against a loop reference and exact counts."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import ops


def np_match(iou, pos, neg, low_quality):
    """Reference: detectron2's Matcher written with loops."""
    n, m = iou.shape
    matched = np.zeros(n, np.int32)
    labels = np.zeros(n, np.int32)
    if m == 0:
        return matched, labels
    for i in range(n):
        j = int(np.argmax(iou[i]))
        matched[i] = j
        best = iou[i, j]
        labels[i] = 1 if best >= pos else (0 if best < neg else -1)
    if low_quality:
        for j in range(m):
            top = iou[:, j].max()
            if top <= 0:
                continue
            for i in range(n):
                if iou[i, j] == top:
                    labels[i] = 1
    return matched, labels


@pytest.mark.parametrize("low_quality", [False, True])
def test_argmax_match_matches_reference(low_quality):
    rng = np.random.default_rng(0)
    iou = rng.uniform(0, 0.8, (40, 6)).astype(np.float32)
    iou[3, 2] = iou[7, 2] = 0.95  # a tie for the best anchor of box 2
    matched, labels = ops.argmax_match(iou, 0.5, 0.4, allow_low_quality=low_quality)
    m_ref, l_ref = np_match(iou, 0.5, 0.4, low_quality)
    np.testing.assert_array_equal(labels.numpy(), l_ref)
    np.testing.assert_array_equal(matched.numpy(), m_ref)


def test_low_quality_match_hand_case():
    # Box 0 overlaps nothing well (best 0.3 at anchor 1), box 1 has a strong anchor.
    iou = np.array([[0.1, 0.0], [0.3, 0.1], [0.0, 0.8], [0.0, 0.0]], np.float32)
    _, plain = ops.argmax_match(iou, 0.7, 0.3)
    _, low = ops.argmax_match(iou, 0.7, 0.3, allow_low_quality=True)
    np.testing.assert_array_equal(plain.numpy(), [0, -1, 1, 0])
    np.testing.assert_array_equal(low.numpy(), [0, 1, 1, 0])


def test_padded_ground_truth_never_matches_and_empty_gt_is_all_negative():
    iou = np.array([[[0.2, 0.9], [0.6, 0.0]]], np.float32)  # [B=1, N=2, M=2]
    matched, labels = ops.argmax_match(iou, 0.5, 0.4, gt_valid=[[True, False]])
    np.testing.assert_array_equal(matched.numpy(), [[0, 0]])
    np.testing.assert_array_equal(labels.numpy(), [[0, 1]])
    matched, labels = ops.argmax_match(iou, 0.5, 0.4, gt_valid=[[False, False]])
    np.testing.assert_array_equal(labels.numpy(), [[0, 0]])
    _, labels = ops.argmax_match(np.zeros((5, 0), np.float32), 0.5, 0.4)
    np.testing.assert_array_equal(labels.numpy(), [0] * 5)


def test_sampler_counts_and_exclusions():
    labels = np.array([1] * 300 + [0] * 1000 + [-1] * 50, np.int32)
    pos, neg = ops.sample_balanced(labels, 256, 0.5, seed=[1, 2])
    pos, neg = pos.numpy(), neg.numpy()
    assert pos.sum() == 128 and neg.sum() == 128
    assert not (pos & neg).any()
    assert np.all(labels[pos] == 1) and np.all(labels[neg] == 0)
    # Few positives: negatives fill the rest; the draw is deterministic for a seed.
    few = np.array([1] * 10 + [0] * 1000 + [-1] * 5, np.int32)
    pos, neg = ops.sample_balanced(few, 256, 0.25, seed=[3, 4])
    assert pos.numpy().sum() == 10 and neg.numpy().sum() == 246
    pos2, neg2 = ops.sample_balanced(few, 256, 0.25, seed=[3, 4])
    np.testing.assert_array_equal(neg.numpy(), neg2.numpy())
    # Not enough of anything: everything available is taken.
    pos, neg = ops.sample_balanced(np.array([1, 0, -1], np.int32), 256, 0.5)
    np.testing.assert_array_equal(pos.numpy(), [True, False, False])
    np.testing.assert_array_equal(neg.numpy(), [False, True, False])


def test_sampler_batched_in_tf_function():
    labels = np.stack([np.array([1] * 5 + [0] * 20, np.int32), np.array([1] * 30 + [0] * 2, np.int32)[:25]])
    f = tf.function(lambda l: ops.sample_balanced(l, 8, 0.5, seed=tf.constant([0, 1])))
    pos, neg = f(labels)
    # At most 8 * 0.5 positives even when negatives run out (as detectron2).
    np.testing.assert_array_equal(pos.numpy().sum(1), [4, 4])
    np.testing.assert_array_equal(neg.numpy().sum(1), [4, 0])
    # Randomness: different seeds draw different positives from 25 candidates.
    draws = {tuple(np.flatnonzero(ops.sample_balanced(labels[1], 8, 0.5, seed=[s, 0])[0].numpy()))
             for s in range(5)}
    assert len(draws) > 1
