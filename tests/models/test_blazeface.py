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
FPN_SSH_PARAMS = 159_072  # same, blazeface_fpn_ssh_1000e


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


def test_fpn_ssh_builds_with_the_reference_count():
    model = models.get("blazeface_fpn_ssh")
    assert count(model) == FPN_SSH_PARAMS
    # The neck hands the head 48-channel maps (FPN halves 96; SSH keeps its width).
    assert [int(c.kernel.shape[2]) for c in model.head.box_convs] == [48, 48]
    assert model.network.get_layer("double_blaze0_pw1_hswish") is not None


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


# ---- the static zoo's editions: weights counted by hand from static/ppdet/modeling/backbones/
# blazenet.py and architectures/blazeface.py (convs without bias + BN scale / shift; the head's
# 3x3 loc and conf convs with bias, 2 classes with the background) ----
def _conv_bn(cin, cout, k, groups=1):
    return k * k * cin // groups * cout + 2 * cout


def _static_blazenet(blaze, double, dense_second):
    n, c = _conv_bn(3, blaze[0][0], 3), blaze[0][0]
    for out1, out2, *stride in blaze:
        n += _conv_bn(out1, out1, 5, out1) + _conv_bn(out1, out2, 1)
        n += _conv_bn(c, out2, 1) if stride else 0
        c = out2
    for out1, mid, out, *stride in double:
        n += _conv_bn(out1, out1, 5, out1) + _conv_bn(out1, mid, 1)
        n += _conv_bn(mid, mid, 5, 1 if dense_second else mid) + _conv_bn(mid, out, 1)
        n += _conv_bn(c, out, 1) if stride else 0
        c = out
    return n


def _lite():
    n, c = _conv_bn(3, 24, 5), 24
    for out in (24, 28, 32, 36, 42, 48, 56, 64, 72, 80, 88, 96, 96, 96, 96, 96):
        n += _conv_bn(c, c, 3, c) + _conv_bn(c, out, 1) + (_conv_bn(c, out, 1) if c != out else 0)
        c = out
    return n


def _head(c8, c16):
    return sum(9 * c * a * 4 + a * 4 + 9 * c * a * 2 + a * 2 for c, a in ((c8, 2), (c16, 6)))


ORIGINAL = ([[24, 24], [24, 24], [24, 48, 2], [48, 48], [48, 48]],
            [[48, 24, 96, 2], [96, 24, 96], [96, 24, 96], [96, 24, 96, 2], [96, 24, 96],
             [96, 24, 96]])
NAS_BLAZE = [[12, 12], [12, 12, 2], [12, 12]]
EDITIONS = {  # row -> (count by hand, stride-8 and stride-16 widths)
    "blazeface_nas": (_static_blazenet(NAS_BLAZE, [[12, 16, 24, 2], [24, 12, 24],
                                                   [24, 16, 72, 2], [72, 12, 72]], True)
                      + _head(24, 72), (24, 72)),
    "blazeface_nas_v2": (_static_blazenet(NAS_BLAZE, [[12, 16, 32, 2], [32, 32, 32],
                                                      [32, 16, 72, 2], [72, 24, 72]], True)
                         + _head(32, 72), (32, 72)),
    "blazeface_lite": (_lite() + _head(88, 96), (88, 96)),
}


def test_the_hand_count_gives_ppdets_blazeface():
    """The counting above, with ppdet 2.x's depthwise second conv, gives PADDLE.md's count."""
    assert _static_blazenet(*ORIGINAL, dense_second=False) + _head(96, 96) == BLAZEFACE_PARAMS


@pytest.mark.parametrize("row", sorted(EDITIONS))
def test_static_editions_build_with_the_hand_count(row):
    expected, widths = EDITIONS[row]
    model = models.get(row, image_size=128)
    assert count(model) == expected
    assert model.feature_sizes == (16, 8) and model.head.priors_per_cell == (2, 6)
    assert tuple(int(conv.kernel.shape[2]) for conv in model.head.box_convs) == widths
    out = model(tf.zeros([1, 128, 128, 3]))
    assert out["boxes"].shape == (1, 750, 4)


def test_static_double_block_has_a_dense_second_conv():
    x = keras.Input([16, 16, 24])
    dense = keras.Model(x, blaze_block(x, 24, 16, 24, dense_second_dw=True, name="s"))
    thin = keras.Model(x, blaze_block(x, 24, 16, 24, name="p"))
    assert dense.get_layer("s_dw2_conv").kernel.shape == (5, 5, 16, 16)
    assert thin.get_layer("p_dw2_conv").kernel.shape == (5, 5, 16, 1)
