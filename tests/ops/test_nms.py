"""Hard NMS, per-class NMS and soft-NMS against numpy loop references."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfdet import ops


def np_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def np_nms(boxes, scores, thr, max_out, score_thr=-np.inf):
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= score_thr]
    keep = []
    while order and len(keep) < max_out:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if np_iou(boxes[i], boxes[j]) <= thr]
    return keep


def np_soft_nms(boxes, scores, sigma, score_thr, max_out, method, thr):
    live = scores.astype(np.float64).copy()
    live[live < score_thr] = -np.inf
    keep, kept_scores = [], []
    while len(keep) < max_out and len(live) and live.max() >= score_thr:
        i = int(np.argmax(live))
        keep.append(i)
        kept_scores.append(live[i])
        for j in range(len(live)):
            if not np.isfinite(live[j]):
                continue
            iou = np_iou(boxes[i], boxes[j])
            if method == "gaussian":
                live[j] *= math.exp(-iou * iou / sigma)
            elif iou > thr:
                live[j] *= 1 - iou
        live[i] = -np.inf
        live[live < score_thr] = -np.inf
    return keep, kept_scores


def clustered_boxes(rng, n):
    centres = rng.uniform(20, 80, (4, 2))
    c = centres[rng.integers(0, 4, n)] + rng.normal(0, 4, (n, 2))
    wh = rng.uniform(10, 30, (n, 2))
    return np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)


def test_nms_matches_reference():
    rng = np.random.default_rng(0)
    boxes = clustered_boxes(rng, 60)
    scores = rng.permutation(60).astype(np.float32) / 60  # distinct scores: no tie ambiguity
    for thr in (0.3, 0.5, 0.7):
        got = ops.nms(boxes, scores, thr, 20, score_threshold=0.2).numpy().tolist()
        assert got == np_nms(boxes, scores, thr, 20, 0.2)


def test_nms_hand_case_and_empty():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]]
    assert ops.nms(boxes, [0.9, 0.8, 0.7], 0.5, 10).numpy().tolist() == [0, 2]
    assert ops.nms(boxes, [0.9, 0.8, 0.7], 0.9, 10).numpy().tolist() == [0, 1, 2]
    assert ops.nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), 0.5, 10).shape == (0,)


def test_batched_nms_pads_with_minus_one():
    rng = np.random.default_rng(1)
    boxes = np.stack([clustered_boxes(rng, 30) for _ in range(2)])
    scores = np.stack([rng.permutation(30) / 30 for _ in range(2)]).astype(np.float32)
    idx, n = ops.batched_nms(boxes, scores, 0.5, 25)
    for b in range(2):
        ref = np_nms(boxes[b], scores[b], 0.5, 25)
        assert int(n[b]) == len(ref)
        assert idx[b, : len(ref)].numpy().tolist() == ref
        assert np.all(idx[b, len(ref):].numpy() == -1)


def test_multiclass_nms_is_per_class():
    rng = np.random.default_rng(2)
    n, c = 40, 3
    boxes = clustered_boxes(rng, n)
    scores = rng.uniform(0, 1, (n, c)).astype(np.float32)
    out = ops.multiclass_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.3,
                             max_per_class=100, max_total=200)
    ref = []
    for k in range(c):
        for i in np_nms(boxes, scores[:, k], 0.5, 100, 0.3):
            ref.append((round(float(scores[i, k]), 6), k, tuple(np.round(boxes[i], 4))))
    num = int(out["num_detections"])
    got = [(round(float(s), 6), int(k), tuple(np.round(b, 4))) for s, k, b in zip(
        out["scores"][:num].numpy(), out["classes"][:num].numpy(), out["boxes"][:num].numpy())]
    assert sorted(got) == sorted(ref)
    assert list(out["scores"][:num].numpy()) == sorted(out["scores"][:num].numpy(), reverse=True)
    assert np.all(out["scores"][num:].numpy() == 0)
    # Overlapping boxes of different classes both survive.
    two = ops.multiclass_nms([[0, 0, 10, 10], [0, 0, 10, 10]], [[0.9, 0.0], [0.0, 0.8]])
    assert int(two["num_detections"]) == 2


def test_class_specific_boxes():
    boxes = np.array([[[0, 0, 10, 10], [50, 50, 60, 60]]], np.float32)  # [N=1, C=2, 4]
    out = ops.multiclass_nms(boxes, [[0.6, 0.9]], score_threshold=0.05)
    np.testing.assert_allclose(out["boxes"][:2].numpy(), [[50, 50, 60, 60], [0, 0, 10, 10]])
    assert out["classes"][:2].numpy().tolist() == [1, 0]


@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_soft_nms_matches_reference(method):
    rng = np.random.default_rng(3)
    boxes = clustered_boxes(rng, 50)
    scores = (rng.permutation(50).astype(np.float32) + 1) / 50
    idx, sc = ops.soft_nms(boxes, scores, sigma=0.5, score_threshold=0.01, max_output_size=40,
                           method=method, iou_threshold=0.3)
    ref_idx, ref_sc = np_soft_nms(boxes, scores, 0.5, 0.01, 40, method, 0.3)
    assert idx.numpy().tolist() == ref_idx
    np.testing.assert_allclose(sc.numpy(), ref_sc, rtol=1e-5)


def test_gaussian_soft_nms_equals_tensorflow_op_with_half_sigma():
    rng = np.random.default_rng(4)
    boxes = clustered_boxes(rng, 30)
    scores = (rng.permutation(30).astype(np.float32) + 1) / 30
    idx, sc = ops.soft_nms(boxes, scores, sigma=0.5, score_threshold=0.01, max_output_size=30)
    tf_idx, tf_sc = tf.image.non_max_suppression_with_scores(
        boxes, scores, 30, iou_threshold=1.0, score_threshold=0.01, soft_nms_sigma=0.25)
    assert idx.numpy().tolist() == tf_idx.numpy().tolist()
    np.testing.assert_allclose(sc.numpy(), tf_sc.numpy(), rtol=1e-5)


def test_soft_nms_hand_case_and_empty():
    boxes = [[0, 0, 10, 10], [0, 0, 10, 5], [30, 30, 40, 40]]  # IoU(0, 1) = 0.5
    idx, sc = ops.soft_nms(boxes, [0.9, 0.8, 0.5], sigma=0.5, score_threshold=0.01)
    assert idx.numpy().tolist() == [0, 2, 1]
    np.testing.assert_allclose(sc.numpy(), [0.9, 0.5, 0.8 * math.exp(-0.25 / 0.5)], rtol=1e-6)
    idx, sc = ops.soft_nms(boxes, [0.9, 0.8, 0.5], method="hard", iou_threshold=0.4)
    assert idx.numpy().tolist() == [0, 2]
    idx, _ = ops.soft_nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
    assert idx.shape == (0,)
    with pytest.raises(ValueError, match="unknown method"):
        ops.soft_nms(boxes, [0.9, 0.8, 0.5], method="cubic")


def test_soft_nms_and_batched_nms_run_inside_tf_function():
    rng = np.random.default_rng(5)
    boxes = clustered_boxes(rng, 20)
    scores = (rng.permutation(20).astype(np.float32) + 1) / 20
    graph = tf.function(lambda b, s: ops.soft_nms(b, s, method="linear"))
    eager_idx, eager_sc = ops.soft_nms(boxes, scores, method="linear")
    idx, sc = graph(boxes, scores)
    assert idx.numpy().tolist() == eager_idx.numpy().tolist()
    np.testing.assert_allclose(sc.numpy(), eager_sc.numpy())
    idx, n = tf.function(lambda b, s: ops.batched_nms(b, s, 0.5, 10))(boxes[None], scores[None])
    assert idx[0, : int(n[0])].numpy().tolist() == np_nms(boxes, scores, 0.5, 10)


def test_labeled_nms_is_per_class_nms_of_each_candidate_class():
    rng = np.random.default_rng(3)
    b, n, k = 2, 60, 3
    xy = rng.uniform(0, 80, (b, n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (b, n, 2))], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (b, n)).astype(np.float32)
    classes = rng.integers(0, k, (b, n)).astype(np.int32)
    out = ops.batched_labeled_nms(boxes, scores, classes, iou_threshold=0.5,
                                  score_threshold=0.2, max_total=30)
    for i in range(b):
        expected = []  # numpy reference: NMS within each class, then the best 30 overall
        for c in range(k):
            members = np.flatnonzero(classes[i] == c)
            kept = np_nms(boxes[i, members], scores[i, members], 0.5, n, 0.2)
            expected += [(scores[i, members[j]], c, tuple(boxes[i, members[j]])) for j in kept]
        expected = sorted(expected, key=lambda e: -e[0])[:30]
        num = int(out["num_detections"][i])
        assert num == len(expected)
        np.testing.assert_allclose(out["scores"][i, :num], [e[0] for e in expected], rtol=1e-6)
        np.testing.assert_array_equal(out["classes"][i, :num], [e[1] for e in expected])
        np.testing.assert_allclose(out["boxes"][i, :num], [e[2] for e in expected], atol=1e-4)
        assert not out["boxes"][i, num:].numpy().any() and not out["scores"][i, num:].numpy().any()


@pytest.mark.parametrize("class_specific", [False, True])
def test_batched_multiclass_soft_nms_is_per_class_soft_nms_then_the_best_over_classes(
        class_specific):
    """Paddle's MultiClassSoftNMS: each class's Gaussian soft-NMS (sigma 0.5, scores below
    0.01 dropped), then the keep_top_k best decayed scores over the classes."""
    rng = np.random.default_rng(7)
    batch, n, classes, keep = 2, 40, 3, 25
    boxes = np.stack([clustered_boxes(rng, n) for _ in range(batch)])
    if class_specific:
        boxes = boxes[:, :, None] + rng.normal(0, 2, (batch, n, classes, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, (batch, n, classes)).astype(np.float32) ** 3  # many < 0.01
    out = ops.batched_multiclass_soft_nms(boxes, scores, sigma=0.5, score_threshold=0.01,
                                          max_total=keep)
    for b in range(batch):
        candidates = []
        for c in range(classes):
            cb = boxes[b, :, c] if class_specific else boxes[b]
            idx, sc = np_soft_nms(cb, scores[b, :, c], 0.5, 0.01, n, "gaussian", 0.3)
            candidates += [(s, c, cb[i]) for i, s in zip(idx, sc)]
        candidates.sort(key=lambda t: -t[0])
        expected = candidates[:keep]
        num = int(out["num_detections"][b])
        assert num == len(expected) == keep
        np.testing.assert_allclose(out["scores"][b, :num], [t[0] for t in expected], rtol=1e-5)
        assert out["classes"][b, :num].numpy().tolist() == [t[1] for t in expected]
        np.testing.assert_allclose(out["boxes"][b, :num], [t[2] for t in expected], atol=1e-5)


def test_batched_multiclass_soft_nms_pads_and_compiles():
    boxes = np.asarray([[[0, 0, 10, 10], [0, 0, 10, 5], [30, 30, 40, 40]]], np.float32)
    scores = np.asarray([[[0.9, 0.005], [0.8, 0.0], [0.5, 0.02]]], np.float32)
    graph = tf.function(lambda b, s: ops.batched_multiclass_soft_nms(b, s, max_total=6))
    out = graph(boxes, scores)
    assert int(out["num_detections"][0]) == 4
    # IoU(box 0, box 1) = 0.5: 0.8 decays to 0.8 exp(-0.25 / 0.5) = 0.485, under box 2's 0.5.
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.5, 0.8 * math.exp(-0.25 / 0.5), 0.02,
                                                  0, 0], rtol=1e-6)
    assert out["classes"][0, :4].numpy().tolist() == [0, 0, 0, 1]
    assert not out["boxes"][0, 4:].numpy().any()
    empty = graph(boxes, np.zeros_like(scores))
    assert int(empty["num_detections"][0]) == 0


def np_weighted_nms(boxes, scores, thr, max_out, score_thr):
    """MediaPipe's WEIGHTED non-max suppression, transcribed as its loop: take the best
    remaining box, cluster every remaining box overlapping it by IoU > thr (itself included),
    output the cluster's score-weighted mean box with the best box's score, repeat."""
    remaining = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= score_thr]
    out = []
    while remaining and len(out) < max_out:
        top = remaining[0]
        cluster = [j for j in remaining if np_iou(boxes[top], boxes[j]) > thr or j == top]
        remaining = [j for j in remaining if j not in cluster]
        w = scores[cluster].astype(np.float64)
        out.append(((w[:, None] * boxes[cluster]).sum(0) / w.sum(), scores[top]))
    return out


def test_box_blending_is_mediapipes_weighted_nms():
    rng = np.random.default_rng(4)
    for trial in range(5):
        boxes = clustered_boxes(rng, 40)
        scores = rng.permutation(np.linspace(0.02, 0.98, 40)).astype(np.float32)
        expected = np_weighted_nms(boxes, scores, 0.3, 10, 0.05)
        out = ops.batched_multiclass_weighted_nms(boxes[None], scores[None, :, None],
                                                  iou_threshold=0.3, score_threshold=0.05,
                                                  max_total=10, pre_nms_top_k=40)
        n = int(out["num_detections"][0])
        assert n == len(expected)
        np.testing.assert_allclose(out["boxes"][0, :n], [b for b, _ in expected], atol=1e-3)
        np.testing.assert_allclose(out["scores"][0, :n], [s for _, s in expected], rtol=1e-6)
        assert not np.any(out["boxes"][0, n:].numpy())  # padding is zero


def test_box_blending_by_hand_per_class_and_batched():
    # Class 0: boxes A and B overlap by IoU 0.6 (blended by 0.9 / 0.6), C stands alone.
    # Class 1: only B scores, so B is its own head. Image 2 is image 1 shifted by 100 px.
    a, b, c = [0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]
    boxes = np.asarray([[a, b, c], [[v + 100 for v in a], [v + 100 for v in b],
                                    [v + 100 for v in c]]], np.float32)
    scores = np.asarray([[[0.9, 0.0], [0.6, 0.7], [0.5, 0.0]]] * 2, np.float32)
    out = ops.batched_multiclass_weighted_nms(boxes, scores, iou_threshold=0.5,
                                              score_threshold=0.1, max_total=5)
    blended = (0.9 * np.asarray(a) + 0.6 * np.asarray(b)) / 1.5
    for image, shift in ((0, 0.0), (1, 100.0)):
        assert int(out["num_detections"][image]) == 3
        np.testing.assert_allclose(out["scores"][image, :3], [0.9, 0.7, 0.5], rtol=1e-6)
        np.testing.assert_array_equal(out["classes"][image, :3], [0, 1, 0])
        np.testing.assert_allclose(out["boxes"][image, :3],
                                   np.asarray([blended, b, c]) + shift, atol=1e-4)


def test_box_blending_is_a_registered_post_processor_of_the_one_stage_detectors():
    from tfdet import models
    from tfdet.registry import POSTPROCESSORS
    nms = POSTPROCESSORS.get("blend")(dict(nms_iou=0.3, score_threshold=0.05,
                                           max_detections=7, pre_nms_top_k=50))
    assert isinstance(nms, ops.MultiClassWeightedNMS) and nms.max_total == 7
    model = models.get("blazeface", nms="blend", image_size=128)
    assert isinstance(model.postprocessor, ops.MultiClassWeightedNMS)
    out = model(tf.random.stateless_normal([1, 128, 128, 3], [1, 1]))
    assert out["boxes"].shape == (1, model.config["max_detections"], 4)
    with pytest.raises(ValueError, match="needs pre_nms='anchor'"):
        models.get("retinanet_r50_fpn", nms="blend", depth=18)
