"""RetinaNet parts: parameter counts from REFERENCE.md, layout and post-processing by hand."""
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfdet import models, ops
from tfdet.backbones import resnet
from tfdet.layers.norm import count_params_without_norm_statistics as count
from tfdet.training.schedules import WarmupPiecewise

# Published fingerprints (../shared/REFERENCE.md): weights less BN moving statistics.
RETINANET_R50_FPN_80 = 37_968_692


@pytest.mark.parametrize("kwargs,expected", [
    (dict(depth=50), 23_508_032),
    (dict(depth=50, variant="d"), 23_527_264),
    (dict(depth=50, norm="frozen_bn"), 23_508_032),
    # torchvision resnet18 / resnext101_64x4d less their fc layers (+19,232 for the vd stem);
    # Paddle's basic-block ResNets add a projection shortcut to res2a (a 64x64 1x1 conv and
    # its norm's scale and bias): PaddleDetection's ResNet-34 count needs it.
    (dict(depth=18, norm="bn"), 11_689_512 - 513_000 + 64 * 64 + 2 * 64),
    (dict(depth=101, variant="d", groups=64, group_width=4), 83_455_272 - 2_049_000 + 19_232),
])
def test_backbone_counts(kwargs, expected):
    assert count(resnet(**kwargs)) == expected


def test_backbone_strides_and_freezing():
    body = resnet(18, norm="bn", freeze_at=2)
    feats = body(np.zeros((1, 97, 130, 3), np.float32))
    assert [tuple(f.shape[1:3]) for f in feats] == [(25, 33), (13, 17), (7, 9), (4, 5)]
    frozen = {w.path.split("/")[0] for w in body.non_trainable_weights
              if "moving" not in w.path}
    assert any(p.startswith("stem") for p in frozen)
    assert any(p.startswith("res2") for p in frozen)
    assert not any(p.startswith("res3") for p in frozen)


def test_registered_retinanet_rows_build_with_reference_count():
    assert "retinanet_r50_fpn_1x" in models.list_models()
    m = models.get("retinanet_r50_fpn")
    assert m.name == "retinanet_r50_fpn_1x"
    assert count(m) == RETINANET_R50_FPN_80
    body_delta = {"retinanet_r101_fpn_1x": 42_500_160 - 23_508_032,  # torchvision r101 less fc
                  "retinanet_x101_vd_64x4d_fpn_1x": 83_455_272 - 2_049_000 + 19_232 - 23_508_032}
    for name in [n for n in models.list_models() if n.startswith("retinanet_")]:
        expected = RETINANET_R50_FPN_80 + body_delta.get(name, 0)
        assert count(models.get(name)) == expected, name
    with pytest.raises(KeyError, match="unknown model"):
        models.get("retinanet_r42_fpn")


def test_postprocess_decodes_the_anchor_that_fires():
    m = models.get("retinanet_r50_fpn", num_classes=3, depth=18, norm="bn")
    images = tf.zeros([1, 256, 256, 3])
    anchors, counts = m.anchors(256, 256)
    n = int(anchors.shape[0])
    assert n == sum((256 // s) ** 2 * 9 for s in (8, 16, 32, 64, 128))
    logits = np.full((1, n, 3), -10.0, np.float32)
    deltas = np.zeros((1, n, 4), np.float32)
    target = 1234  # an anchor of P3
    logits[0, target, 2] = 5.0
    deltas[0, target] = [0.5, 0.0, 0.0, 0.0]  # shift right by half the anchor width
    out = m.postprocess(images, tf.constant(logits), tf.constant(deltas))
    assert int(out["num_detections"][0]) == 1
    a = anchors.numpy()[target]
    expect = a + np.array([0.5 * (a[2] - a[0])] * 2 + [0.5 * (a[2] - a[0])] * 2) * [1, 0, 1, 0]
    np.testing.assert_allclose(out["boxes"][0, 0].numpy(), np.clip(expect, 0, 256), atol=1e-3)
    assert int(out["classes"][0, 0]) == 2
    assert float(out["scores"][0, 0]) == pytest.approx(1 / (1 + np.exp(-5.0)), rel=1e-5)


def _np_top_k_per_level(probs, counts, k, by_anchor):
    """The definition: per level, rank the (anchor, class) pairs (or the anchors by their best
    class) by probability, ties to the lower flattened index; keep the k best."""
    batch, _, classes = probs.shape
    out, start = [], 0
    for size in counts:
        level = probs[:, start:start + size]
        picks = []
        for b in range(batch):
            ranked = level[b].max(-1) if by_anchor else level[b].reshape(-1)
            order = np.lexsort((np.arange(ranked.size), -ranked))[:min(k, ranked.size)]
            picks.append(order)
        out.append((start, np.stack(picks)))
        start += size
    return out


@pytest.mark.parametrize("by_anchor", [False, True])
@pytest.mark.parametrize("case", ["normal", "ties", "saturated"])
def test_top_k_per_level_keeps_the_best_pairs_of_each_level(by_anchor, case):
    """The two-stage ranking (best anchors, then their pairs) keeps what ranking every pair of
    the level keeps, ties and float32-saturated scores (1.0) included."""
    m = models.get("retinanet_r50_fpn", num_classes=7, depth=18, norm="bn",
                   pre_nms_top_k=50)
    rng = np.random.default_rng(3)
    counts = [300, 120, 40, 9]
    n = sum(counts)
    logits = rng.normal(0, 3, (2, n, 7)).astype(np.float32)
    if case == "ties":
        logits = np.round(logits)
    elif case == "saturated":
        logits[:, ::3] = 30.0
    deltas = rng.normal(0, 0.1, (2, n, 4)).astype(np.float32)
    corners = np.sort(rng.uniform(0, 100, (n, 2, 2)), 1).astype(np.float32)
    anchors = corners.transpose(0, 2, 1).reshape(n, 4)
    boxes, scores, classes = m.top_k_per_level(tf.constant(logits), deltas, anchors,
                                               [tf.constant(c) for c in counts], by_anchor)
    probs = tf.sigmoid(logits).numpy()
    at = 0
    for start, picks in _np_top_k_per_level(probs, counts, 50, by_anchor):
        kept = picks.shape[1]
        anchor = start + (picks if by_anchor else picks // 7)
        expect_boxes = m.coder.decode(np.take_along_axis(deltas, anchor[..., None], 1),
                                      anchors[anchor]).numpy()
        np.testing.assert_allclose(boxes[:, at:at + kept].numpy(), expect_boxes, rtol=1e-6)
        if by_anchor:
            np.testing.assert_allclose(scores[:, at:at + kept].numpy(),
                                       np.take_along_axis(probs, anchor[..., None], 1),
                                       rtol=1e-6)
        else:
            np.testing.assert_array_equal(classes[:, at:at + kept].numpy(), picks % 7)
            np.testing.assert_array_equal(
                scores[:, at:at + kept].numpy(),
                np.take_along_axis(probs.reshape(2, -1), start * 7 + picks, 1))
        at += kept
    assert boxes.shape[1] == at == (149 if by_anchor else 200)  # min(50, candidates) per level


def test_head_rows_follow_anchor_layout():
    m = models.get("retinanet_r50_fpn", num_classes=2, depth=18, norm="bn")
    logits, deltas = m.raw_outputs(tf.zeros([2, 128, 128, 3]))
    anchors, _ = m.anchors(128, 128)
    assert logits.shape == (2, anchors.shape[0], 2) and deltas.shape == (2, anchors.shape[0], 4)
    # Prior 0.01 on every class logit at initialisation.
    np.testing.assert_allclose(tf.sigmoid(logits).numpy().mean(), 0.01, rtol=0.2)


def test_targets_for_a_box_equal_to_an_anchor():
    m = models.get("retinanet_r50_fpn", num_classes=3, depth=18, norm="bn")
    anchors, _ = m.anchors(128, 128)
    a = anchors.numpy()
    target = int(np.flatnonzero((a[:, 0] >= 0) & (a[:, 2] <= 128) & (a[:, 1] >= 0)
                                & (a[:, 3] <= 128))[40])
    boxes = np.zeros((1, 4, 4), np.float32)
    boxes[0, 0] = a[target]
    classes = np.array([[1, -1, -1, -1]], np.int32)
    labels, cls_t, box_t = m.assign_targets(anchors, boxes, np.maximum(classes, 0),
                                            classes >= 0)
    labels, cls_t, box_t = labels.numpy()[0], cls_t.numpy()[0], box_t.numpy()[0]
    assert labels[target] == 1
    np.testing.assert_array_equal(cls_t[target], [0, 1, 0])
    np.testing.assert_allclose(box_t[target], 0, atol=1e-5)
    # Every positive overlaps the box by >= 0.5 IoU; negatives < 0.4; no class on negatives.
    iou = ops.box_iou(anchors, boxes[0, :1]).numpy()[:, 0]
    assert np.all(iou[labels == 1] >= 0.5) and np.all(iou[labels == 0] < 0.4)
    assert cls_t[labels != 1].sum() == 0


def test_losses_fall_when_fitting_one_batch():
    import keras

    keras.utils.set_random_seed(0)
    m = models.get("retinanet_r50_fpn", num_classes=2, depth=18, norm="bn", freeze_at=0)
    batch = {"images": tf.random.stateless_normal([2, 128, 128, 3], [1, 2]),
             "boxes": tf.constant([[[10, 20, 60, 90], [0, 0, 0, 0]],
                                   [[30, 30, 110, 100], [5, 5, 40, 40]]], tf.float32),
             "classes": tf.constant([[0, -1], [1, 0]]),
             "is_crowd": tf.zeros([2, 2], tf.bool)}
    # The first Adam steps move every weight by about the LR whatever its gradient; with batch
    # norm on two images that alone can throw the loss to the hundreds (it did on a Zen 3 CPU,
    # where oneDNN's kernels round differently). Warm up from 1% and clip the global norm, as
    # a from-scratch recipe does, so the fit does not depend on rounding.
    opt = keras.optimizers.Adam(WarmupPiecewise(1e-3, warmup_steps=10, warmup_factor=0.01),
                                global_clipnorm=10.0)

    @tf.function(autograph=False)
    def step():
        with tf.GradientTape() as tape:
            losses = m.compute_losses(batch)
        grads = tape.gradient(losses["total_loss"], m.trainable_variables)
        opt.apply_gradients(zip(grads, m.trainable_variables))
        return losses

    first = {k: float(v) for k, v in step().items()}
    assert all(np.isfinite(v) for v in first.values())
    # Batch norm on 2 images makes single steps noisy: judge the best of the last ten.
    curve = [float(step()["total_loss"]) for _ in range(50)]
    assert min(curve[-10:]) < 0.4 * first["total_loss"], curve


def test_a_model_is_named_after_its_backbone_when_overrides_change_it():
    from tfdet.config import load_experiment
    quickstart = load_experiment(str(pathlib.Path(__file__).resolve().parents[2] / "configs"
                                     / "quickstart" / "retinanet_r18_sample.gin"))
    model = quickstart.build_model(3)  # the retinanet_r50_fpn_1x row with depth 18
    assert (model.name, model.tfdet_row) == ("retinanet_r18_fpn_1x", "retinanet_r50_fpn_1x")
    assert models.get("yolov3_r34", num_classes=2, depth=18).name == "yolov3_r18"
    assert models.get("retinanet_r50_fpn", num_classes=2, norm="bn").name == (
        "retinanet_r50_fpn_1x")


def test_group_norm_in_the_body_and_head_uses_paddles_epsilon():
    # Paddle's GroupNorm epsilon is 1e-5 everywhere; the head once took Keras' default 1e-3.
    m = models.get("retinanet_r50_fpn", num_classes=2, depth=18, norm="gn", freeze_at=0,
                   fpn_channels=32, head_norm="gn")
    import keras

    gns = [layer for layer in m._flatten_layers(include_self=False, recursive=True)
           if isinstance(layer, keras.layers.GroupNormalization)]
    names = {g.name for g in gns}
    # The R18 body's and both 4-conv towers' (RetinaNet's FPN has no norm).
    assert {"class_gn0", "box_gn3", "stem_norm", "res5_1_b_norm"} <= names, sorted(names)
    assert {g.epsilon for g in gns} == {1e-5}
