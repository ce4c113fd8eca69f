"""Anchor layout against hand-computed anchors and a numpy re-derivation."""
import math

import numpy as np

from tfdet import ops


def test_single_level_hand_values():
    gen = ops.AnchorGenerator(strides=(8,), sizes=(32,), scales=(1.0,), ratios=(1.0, 2.0),
                              offset=0.5)
    anchors, counts = gen(16, 16)
    anchors = anchors.numpy()
    assert [int(c) for c in counts] == [2 * 2 * 2]
    # Cell (0, 0): centre (4, 4); ratio 1 -> 32 x 32; ratio 2 (h / w) -> w = 32 / sqrt2.
    w = 32 / math.sqrt(2)
    np.testing.assert_allclose(anchors[0], [-12, -12, 20, 20], rtol=1e-6)
    np.testing.assert_allclose(anchors[1], [4 - w / 2, 4 - w, 4 + w / 2, 4 + w], rtol=1e-6)
    # Row-major cells: the next cell is x + 1 (centre 12, 4).
    np.testing.assert_allclose(anchors[2], [-4, -12, 28, 20], rtol=1e-6)
    np.testing.assert_allclose(anchors[4], [-12, -4, 20, 28], rtol=1e-6)


def test_retinanet_layout_count_and_areas():
    gen = ops.retinanet_anchor_generator()
    anchors, counts = gen(512, 512)
    assert [int(c) for c in counts] == [64 * 64 * 9, 32 * 32 * 9, 16 * 16 * 9, 8 * 8 * 9, 4 * 4 * 9]
    assert anchors.shape == (49104, 4)
    a = anchors.numpy()
    w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    # First cell of P3: 9 anchors, ratio-major; areas (32 * 2^(i/3))^2 and h / w = ratio.
    for k in range(9):
        ratio, scale = (0.5, 1.0, 2.0)[k // 3], 2 ** ((k % 3) / 3)
        assert math.isclose(w[k] * h[k], (32 * scale) ** 2, rel_tol=1e-5)
        assert math.isclose(h[k] / w[k], ratio, rel_tol=1e-5)
    # Last level (P7, stride 128): the biggest anchor is 512 * 2^(2/3) at ratio 1.
    assert math.isclose(w[-4:].max(), 512 * 2 ** (2 / 3), rel_tol=1e-5)


def test_matches_numpy_reference_for_odd_sizes():
    gen = ops.AnchorGenerator(strides=(4, 8), sizes=(16, 32), scales=(1.0, 1.5), ratios=(0.5, 1.0))
    anchors, _ = gen(30, 21)
    expect = []
    for level, (stride, size) in enumerate([(4, 16), (8, 32)]):
        fh, fw = math.ceil(30 / stride), math.ceil(21 / stride)
        for y in range(fh):
            for x in range(fw):
                for r in (0.5, 1.0):
                    for s in (1.0, 1.5):
                        w = size * s / math.sqrt(r)
                        h = w * r
                        cx, cy = x * stride, y * stride
                        expect.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    np.testing.assert_allclose(anchors.numpy(), np.array(expect), rtol=1e-5, atol=1e-4)
