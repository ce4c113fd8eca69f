"""Box formats, IoU family and the delta coder against numpy references and hand values."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfdet import ops


def np_pairwise(a, b, kind, eps=1e-7):
    """Loop-by-loop reference of the IoU family (the definitions of the papers)."""
    out = np.zeros((len(a), len(b)), np.float64)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            area_p = (p[2] - p[0]) * (p[3] - p[1])
            area_q = (q[2] - q[0]) * (q[3] - q[1])
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = area_p + area_q - inter
            iou = inter / union if union > 0 else 0.0
            ex1, ey1 = min(p[0], q[0]), min(p[1], q[1])
            ex2, ey2 = max(p[2], q[2]), max(p[3], q[3])
            if kind == "iou":
                out[i, j] = iou
            elif kind == "giou":
                enc = (ex2 - ex1) * (ey2 - ey1)
                out[i, j] = iou - (enc - union) / enc if enc > 0 else iou
            else:
                diag = (ex2 - ex1) ** 2 + (ey2 - ey1) ** 2 + eps
                cp = ((p[0] + p[2]) / 2, (p[1] + p[3]) / 2)
                cq = ((q[0] + q[2]) / 2, (q[1] + q[3]) / 2)
                d = iou - ((cp[0] - cq[0]) ** 2 + (cp[1] - cq[1]) ** 2) / diag
                if kind == "ciou":
                    v = 4 / math.pi**2 * (math.atan((q[2] - q[0]) / (q[3] - q[1]))
                                          - math.atan((p[2] - p[0]) / (p[3] - p[1]))) ** 2
                    d -= v / (1 - iou + v + eps) * v
                out[i, j] = d
    return out


def random_boxes(rng, n, size=100.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize("kind,fn", [
    ("iou", ops.box_iou), ("giou", ops.generalized_box_iou),
    ("diou", ops.distance_box_iou), ("ciou", ops.complete_box_iou)])
def test_pairwise_overlaps_match_reference(kind, fn):
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 7), random_boxes(rng, 5)
    got = fn(a, b).numpy()
    assert got.shape == (7, 5)
    np.testing.assert_allclose(got, np_pairwise(a, b, kind), rtol=1e-5, atol=1e-6)
    # Elementwise form agrees with the diagonal of the pairwise one.
    diag = ops.elementwise_box_iou(a[:5], b, kind=kind).numpy()
    np.testing.assert_allclose(diag, np.diag(np_pairwise(a[:5], b, kind)), rtol=1e-5, atol=1e-6)


def test_iou_hand_values():
    a = [[0, 0, 10, 10]]
    b = [[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [20, 0, 30, 10]]
    np.testing.assert_allclose(ops.box_iou(a, b).numpy()[0], [1.0, 50 / 150, 0.0, 0.0], rtol=1e-6)
    # GIoU of disjoint boxes: enclosing [0,0,30,10] = 300, union 200 -> -100/300.
    assert ops.generalized_box_iou(a, [[20, 0, 30, 10]]).numpy()[0, 0] == pytest.approx(-1 / 3)
    # DIoU of same-size boxes 20 apart horizontally: centre distance 20^2, diagonal 30^2+10^2.
    assert ops.distance_box_iou(a, [[20, 0, 30, 10]]).numpy()[0, 0] == pytest.approx(
        -400 / 1000, rel=1e-5)


def test_degenerate_and_empty_boxes_give_no_nan():
    zero = [[5, 5, 5, 5]]
    for fn in (ops.box_iou, ops.generalized_box_iou, ops.distance_box_iou, ops.complete_box_iou):
        v = fn(zero, zero).numpy()
        assert np.all(np.isfinite(v)), fn.__name__
    assert ops.box_iou(zero, zero).numpy()[0, 0] == 0.0
    assert ops.box_iou(np.zeros((0, 4), np.float32), [[0, 0, 1, 1]]).shape == (0, 1)
    assert ops.box_iou([[0, 0, 1, 1]], np.zeros((0, 4), np.float32)).shape == (1, 0)


def test_batched_pairwise_iou():
    rng = np.random.default_rng(1)
    a = np.stack([random_boxes(rng, 4) for _ in range(3)])
    b = np.stack([random_boxes(rng, 6) for _ in range(3)])
    got = ops.box_iou(a, b).numpy()
    for i in range(3):
        np.testing.assert_allclose(got[i], np_pairwise(a[i], b[i], "iou"), rtol=1e-5, atol=1e-6)


def test_format_round_trips_and_hand_values():
    xyxy = np.array([[1.0, 2.0, 11.0, 22.0]], np.float32)
    expect = {"xywh": [1, 2, 10, 20], "cxcywh": [6, 12, 10, 20], "yxyx": [2, 1, 22, 11]}
    for fmt, value in expect.items():
        got = ops.convert_format(xyxy, "xyxy", fmt).numpy()
        np.testing.assert_allclose(got[0], value)
        np.testing.assert_allclose(ops.convert_format(got, fmt, "xyxy").numpy(), xyxy)
    np.testing.assert_allclose(ops.convert_format([[6, 12, 10, 20]], "cxcywh", "xywh").numpy(),
                               [[1, 2, 10, 20]])
    with pytest.raises(ValueError, match="unknown box format"):
        ops.convert_format(xyxy, "xyxy", "xxyy")


def test_normalize_clip_area_valid():
    boxes = np.array([[-5, 10, 50, 120], [10, 10, 5, 20], [0, 0, np.nan, 1]], np.float32)
    np.testing.assert_allclose(ops.normalize_boxes(boxes[:1], 100, 50).numpy(),
                               [[-0.1, 0.1, 1.0, 1.2]], rtol=1e-6)
    np.testing.assert_allclose(ops.denormalize_boxes([[0.5, 0.5, 1, 1]], 100, 50).numpy(),
                               [[25, 50, 50, 100]])
    np.testing.assert_allclose(ops.clip_boxes(boxes[:1], 100, 50).numpy(), [[0, 10, 50, 100]])
    np.testing.assert_allclose(ops.box_area(boxes[:2]).numpy(), [55 * 110, 0])
    np.testing.assert_array_equal(ops.valid_boxes_mask(boxes).numpy(), [True, False, False])


def test_encode_decode_round_trip_and_hand_value():
    rng = np.random.default_rng(2)
    anchors, gt = random_boxes(rng, 50), random_boxes(rng, 50)
    for weights in [(1, 1, 1, 1), (10, 10, 5, 5)]:
        deltas = ops.encode_boxes(gt, anchors, weights)
        np.testing.assert_allclose(ops.decode_boxes(deltas, anchors, weights).numpy(), gt,
                                   rtol=1e-4, atol=1e-3)
    # Anchor [0,0,10,10] (centre 5, size 10) to box [5,0,25,10] (centre 15, w 20):
    d = ops.encode_boxes([[5, 0, 25, 10]], [[0, 0, 10, 10]], (10, 10, 5, 5)).numpy()[0]
    np.testing.assert_allclose(d, [10 * 10 / 10, 0, 5 * math.log(2), 0], rtol=1e-6)


def test_decode_clamps_large_scales():
    out = ops.decode_boxes([[0, 0, 100.0, 100.0]], [[0, 0, 10, 10]]).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 10 * 1000 / 16, rtol=1e-4)


def test_ops_compile_with_xla():
    f = tf.function(lambda a, b: ops.complete_box_iou(a, b), jit_compile=True)
    rng = np.random.default_rng(3)
    a, b = random_boxes(rng, 4), random_boxes(rng, 3)
    np.testing.assert_allclose(f(a, b).numpy(), np_pairwise(a, b, "ciou"), rtol=1e-5, atol=1e-6)
