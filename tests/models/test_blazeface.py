"""BlazeFace (ppdet 2.6.0 blazeface_1000e): the reference parameter count, BlazeNet's blocks,
the priors by hand, and the detector interface. Outputs against ppdet's: the parity fixture
blazeface_1000e (tests/parity)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet import models, ops
from tfdet.backbones import blaze_block, blazenet
from tfdet.layers.norm import count_params_without_norm_statistics as count

BLAZEFACE_PARAMS = 115_584  # ../shared/reference/PADDLE.md, ppdet 2.6.0 blazeface_1000e


@pytest.fixture(scope="module")
def blazeface():
    return models.get("blazeface")


def test_blazeface_builds_with_the_reference_count(blazeface):
    assert count(blazeface) == BLAZEFACE_PARAMS
    assert blazeface.num_classes == 1 and blazeface.fixed_input_size == 640
    # 2 priors per cell on the 80 x 80 map, 6 on the 40 x 40 one.
    assert blazeface.feature_sizes == (80, 40)
    assert blazeface.head.priors_per_cell == (2, 6)
    assert blazeface.num_priors == 80 * 80 * 2 + 40 * 40 * 6


def test_blazenet_maps_and_block_shapes():
    body = blazenet(input_size=64)
    assert [tuple(o.shape[1:]) for o in body.outputs] == [(8, 8, 96), (4, 4, 96)]
    # A strided block pools its shortcut with ceil mode: 9 -> 5, as the 5x5 / 2 conv gives.
    x = keras.Input([9, 9, 24])
    y = blaze_block(x, 24, 48, None, 2, name="odd")
    assert tuple(y.shape[1:]) == (5, 5, 48)
    with pytest.raises(ValueError, match="depthwise conv of 48 channels on 24"):
        blaze_block(x, 48, 48, name="bad")


def test_priors_by_hand(blazeface):
    priors = blazeface.priors.numpy()
    # The first cell of the stride-8 map (centre 4, 4): 16 and 24 px squares, in that order.
    np.testing.assert_allclose(priors[:2], [[-4, -4, 12, 12], [-8, -8, 16, 16]])
    # The first cell of the stride-16 map (centre 8, 8): 32, 48, ..., 128 px squares.
    first = 80 * 80 * 2
    sides = np.asarray([32, 48, 64, 80, 96, 128], np.float32)
    np.testing.assert_allclose(priors[first:first + 6],
                               np.stack([8 - sides / 2] * 2 + [8 + sides / 2] * 2, 1))
    # The last cell of that map: centre (632, 632).
    np.testing.assert_allclose(priors[-1], [632 - 64, 632 - 64, 632 + 64, 632 + 64])
    # A map with several min sizes and max sizes pairs them in order (Paddle's prior_box).
    two = ops.ssd_priors([1], 10, [(2, 4)], [(8, 16)], [(2,)], flip=False)
    sq2 = np.sqrt(2)
    expected_wh = [(2, 2), (2 * sq2, 2 / sq2), (4, 4), (4, 4), (4 * sq2, 4 / sq2), (8, 8)]
    wh = two[:, 2:] - two[:, :2]
    np.testing.assert_allclose(wh, expected_wh, rtol=1e-6)
    assert ops.priors_per_cell((2,), (8, 16), False, (2, 4)) == 6


def test_detections_and_losses(blazeface):
    images = tf.random.stateless_normal([1, 640, 640, 3], [3, 4])
    out = blazeface(images)
    assert out["boxes"].shape == (1, 750, 4) and out["classes"].dtype == tf.int32
    assert int(tf.reduce_max(out["classes"])) == 0  # one class
    batch = {"images": images, "boxes": tf.constant([[[100.0, 120, 180, 210]]]),
             "classes": tf.constant([[0]]), "is_crowd": tf.zeros([1, 1], tf.bool)}
    losses = blazeface.compute_losses(batch, training=False)
    assert set(losses) == {"class_loss", "box_loss", "total_loss"}
    assert all(np.isfinite(float(v)) for v in losses.values())


def test_priors_keep_their_pixel_sizes_at_another_input_size():
    """base_size None: at 320 the maps are 40 and 20 cells with strides 8 and 16 and the
    priors keep their sizes (ppdet builds them from the map sizes, steps and sizes as given)."""
    small = models.get("blazeface", image_size=320)
    assert small.feature_sizes == (40, 20)
    priors = small.priors.numpy()
    assert priors.shape == (40 * 40 * 2 + 20 * 20 * 6, 4)
    np.testing.assert_allclose(priors[:2], [[-4, -4, 12, 12], [-8, -8, 16, 16]])
    np.testing.assert_allclose(priors[-1], [312 - 64, 312 - 64, 312 + 64, 312 + 64])
