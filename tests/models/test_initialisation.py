"""Each randomly initialised kernel is its own draw, as in the zoo (Paddle draws every
ParamAttr's initializer anew): RetinaNet's and the RPN's normal(0, 0.01) convs, the mask
head's MSRA convs and the FPN's Xavier convs. One unseeded Keras 3 initializer instance
shared by several layers gave every same-shaped kernel identical values."""
import itertools

import keras
import numpy as np

from tfdet.heads import MaskHead, RetinaNetHead, RPNHead
from tfdet.necks.fpn import fpn


def _kernels(layer):
    return {w.path: np.asarray(w) for w in layer.weights if w.path.endswith("kernel")}


def _assert_independent_draws(kernels, expected_std=None):
    same_shape = [(a, b) for a, b in itertools.combinations(sorted(kernels), 2)
                  if kernels[a].shape == kernels[b].shape]
    assert same_shape, "the test needs same-shaped kernels to compare"
    for a, b in same_shape:
        # Independent draws: near-zero correlation, not equality.
        corr = np.corrcoef(kernels[a].ravel(), kernels[b].ravel())[0, 1]
        assert abs(corr) < 0.05, (a, b, corr)
    if expected_std is not None:
        for path, k in kernels.items():
            assert abs(k.std() / expected_std - 1) < 0.05, (path, k.std())


def test_retinanet_and_rpn_heads_draw_each_conv_from_normal_0_01():
    head = RetinaNetHead(num_classes=3, num_anchors=9, channels=64)
    head([keras.Input((8, 8, 64)), keras.Input((4, 4, 64))])
    kernels = _kernels(head)
    assert len(kernels) == 10  # 4 + 4 tower convs, class_out, box_out
    _assert_independent_draws(kernels, expected_std=0.01)

    rpn = RPNHead(num_anchors=3, channels=64)
    rpn([keras.Input((8, 8, 64))])
    both = {**_kernels(rpn), **{"retina/" + k: v for k, v in kernels.items()}}
    _assert_independent_draws(both)


def test_mask_head_draws_each_conv_with_msra_fan_in():
    head = MaskHead(num_classes=3, num_convs=4, conv_dim=32)
    head(keras.Input((2, 14, 14, 32)))
    kernels = {p: k for p, k in _kernels(head).items() if "/conv" in p}
    assert len(kernels) == 4
    # Keras' HeNormal: a normal truncated at 2 std, widened so that its std is
    # sqrt(2 / fan_in) after the truncation (Paddle's MSRA: the same std), fan_in = 3 * 3 * 32.
    _assert_independent_draws(kernels, expected_std=np.sqrt(2 / (9 * 32)))


def test_fpn_output_convs_are_independent_draws():
    features = [keras.Input((32 // s, 32 // s, c)) for s, c in ((1, 16), (2, 32), (4, 64),
                                                                 (8, 128))]
    model = keras.Model(features, fpn(features, 3, 7, channels=32))
    kernels = _kernels(model)
    assert len(kernels) == 8  # 3 lateral, 3 output, P6, P7
    _assert_independent_draws(kernels)
