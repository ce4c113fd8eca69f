"""FaceBoxes and FaceBoxes-Lite (the static zoo's faceboxes.yml / faceboxes_lite.yml): weights
counted by hand from the static code, Paddle's density_prior_box by hand, Paddle's padded max
pool against numpy, the detector interface. (ppdet 2.6.0 has no FaceBoxes to match outputs
with.)"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet import models, ops
from tfdet.layers import PaddedMaxPool2D
from tfdet.layers.norm import count_params_without_norm_statistics as count


def _conv_bn(cin, cout, k):
    return k * k * cin * cout + 2 * cout


def _inception(cin):
    return (_conv_bn(cin, 32, 1) + _conv_bn(cin, 32, 1) + _conv_bn(cin, 24, 1)
            + _conv_bn(24, 32, 3) + _conv_bn(cin, 24, 1) + _conv_bn(24, 32, 3)
            + _conv_bn(32, 32, 3))


def _head(maps):
    return sum(9 * c * a * 6 + a * 6 for c, a in maps)  # loc (4) and conf (2) convs, biases


# static/ppdet/modeling/backbones/faceboxnet.py, its live graph (conv_2 is never used there).
FACEBOXES = (_conv_bn(3, 24, 7) + _inception(48) + 2 * _inception(128)
             + _conv_bn(128, 128, 1) + _conv_bn(128, 256, 3)
             + _conv_bn(256, 128, 1) + _conv_bn(128, 256, 3)
             + _head([(128, 16 + 4 + 1), (256, 1), (256, 1)]))
FACEBOXES_LITE = (_conv_bn(3, 8, 3) + _conv_bn(16, 24, 3) + _conv_bn(48, 48, 3)
                  + _conv_bn(48, 64, 1) + _inception(64) + 2 * _inception(128)
                  + _conv_bn(128, 128, 1) + _conv_bn(128, 256, 3)
                  + _head([(128, 4 + 1 + 1), (256, 2)]))


@pytest.mark.parametrize("row, expected, sizes", [
    ("faceboxes", FACEBOXES, (80, 40, 20)), ("faceboxes_lite", FACEBOXES_LITE, (80, 40))])
def test_rows_build_with_the_hand_count(row, expected, sizes):
    model = models.get(row)
    assert count(model) == expected
    assert model.feature_sizes == sizes and model.fixed_input_size == 640
    per_cell = (21, 1, 1) if row == "faceboxes" else (6, 2)
    assert model.head.priors_per_cell == per_cell
    assert model.num_priors == sum(s * s * a for s, a in zip(sizes, per_cell))


def test_density_priors_by_hand():
    """A 2 x 2 map on a 16 px image, step 8: a 8 px box at density 2 (shift 8 // 2 = 4: centres
    2 px either side of the cell centre, row by row), then a 16 px one at density 1; clamped
    to the image as Paddle's kernel does."""
    priors = ops.density_priors([2], 16, [(8, 16)], [(2, 1)], [8])
    assert priors.shape == (2 * 2 * 5, 4)
    first = [[0, 0, 6, 6], [2, 0, 10, 6], [0, 2, 6, 10], [2, 2, 10, 10], [0, 0, 12, 12]]
    np.testing.assert_allclose(priors[:5], first)
    # The last cell (centre 12, 12).
    last = [[6, 6, 14, 14], [10, 6, 16, 14], [6, 10, 14, 16], [10, 10, 16, 16], [4, 4, 16, 16]]
    np.testing.assert_allclose(priors[-5:], last)
    # Paddle's integer step and shift: a step of 8.5 averages to 8, density 3 shifts by 2.
    odd = ops.density_priors([1], 17, [(1,)], [(3,)], [8.5])  # 1 px boxes: none clamped
    centres = (odd[:, :2] + odd[:, 2:]) / 2
    np.testing.assert_allclose(centres[:3, 0], [4.25 - 4 + 1 + 0, 4.25 - 4 + 1 + 2,
                                                4.25 - 4 + 1 + 4])
    assert ops.density_priors_per_cell((4, 2, 1)) == 21


def _paddle_max_pool(x, k=3, s=2, p=1):
    """Paddle's max pool (floor mode): padding never wins."""
    padded = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)], constant_values=-np.inf)
    h = (x.shape[1] + 2 * p - k) // s + 1
    w = (x.shape[2] + 2 * p - k) // s + 1
    out = np.empty((x.shape[0], h, w, x.shape[3]), x.dtype)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = padded[:, i * s:i * s + k, j * s:j * s + k].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("size", [8, 9])
def test_padded_max_pool_matches_paddles(size):
    x = -np.abs(np.random.default_rng(size).normal(size=(1, size, size, 3))).astype(np.float32)
    ours = PaddedMaxPool2D(3, 2, 1)(x).numpy()
    np.testing.assert_array_equal(ours, _paddle_max_pool(x))
    # Keras' 'same' pool pads an even size at the bottom / right only: windows shifted.
    same = keras.layers.MaxPooling2D(3, 2, padding="same")(x).numpy()
    assert np.array_equal(same, ours) == (size % 2 == 1)


def test_crelu_concatenates_the_negation():
    from tfdet.backbones import crelu_block
    x = keras.Input([8, 8, 3])
    model = keras.Model(x, crelu_block(x, 4, 3, 2, "c"))
    y = model(tf.random.stateless_normal([1, 8, 8, 3], [1, 2])).numpy()
    assert y.shape == (1, 4, 4, 8)
    np.testing.assert_array_equal(y[..., 4:], -y[..., :4])
    assert (y[..., :4] >= 0).all()


@pytest.mark.parametrize("row", ["faceboxes", "faceboxes_lite"])
def test_detections_and_losses(row):
    model = models.get(row, image_size=128, num_classes=1)
    images = tf.random.stateless_normal([1, 128, 128, 3], [3, 4])
    out = model(images)
    assert out["boxes"].shape == (1, 750, 4)
    batch = {"images": images, "boxes": tf.constant([[[20.0, 24, 60, 70]]]),
             "classes": tf.constant([[0]]), "is_crowd": tf.zeros([1, 1], tf.bool)}
    losses = model.compute_losses(batch, training=False)
    assert all(np.isfinite(float(v)) for v in losses.values())
