"""Cascade R-CNN: the zoo's counts, the test-time cascade against a numpy transcription (each
stage refines the previous stage's boxes with its own coder weights, the foreground delta of
a class-agnostic head, clipped; scores are the mean of the stages' softmax), the stages'
sampling and loss weights, and Cascade Mask R-CNN's outputs."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.models.test_faster_rcnn import R101_BODY, VD_STEM
from tfdet import models, ops
from tfdet.detectors import CascadeRCNN
from tfdet.layers.norm import count_params_without_norm_statistics as count
from tfdet.registry import POSTPROCESSORS

# REFERENCE.md (static zoo, 81 classes, 8 regression outputs per stage): 69,407,066. The
# others: ppdet 2.6.0's counts (PADDLE.md) plus the static zoo's 81-way heads, +4,100 per
# stage's box head (4 more regression outputs of 1,025 weights) and +257 for a mask head.
STAGES = 3 * 4_100
COUNTS = {
    "cascade_rcnn_r50_fpn_1x": 69_407_066,
    "cascade_mask_rcnn_r50_fpn_1x": 72_038_046 + STAGES + 257,
    "cascade_rcnn_dcn_r50_fpn_1x": 70_266_029 + STAGES,
    # ppdet 2.6.0 has no cascade R101-vd-DCN config: the DCN R50 cascade plus the R101-vd
    # body's difference, as ppdet's Faster R-CNN DCN rows give it.
    "cascade_rcnn_dcn_r101_vd_fpn_1x": 70_266_029 + STAGES + (62_693_674 - 42_624_319),
    "cascade_rcnn_dcn_x101_vd_64x4d_fpn_1x": 135_026_840 + STAGES,
    # REFERENCE.md's class-aware R50-FPN (324 regression outputs per stage, 7x7 RoIs), with
    # the R101-vd body and the row's 14x14 RoIs (fc6 reads 256 x 196 instead of 256 x 49).
    "cascade_rcnn_cls_aware_r101_vd_fpn_1x_softnms":
        70_378_766 + R101_BODY + VD_STEM + 3 * 256 * (196 - 49) * 1024,
}
COUNTS["cascade_rcnn_cls_aware_r101_vd_fpn_ms_test"] = COUNTS[
    "cascade_rcnn_cls_aware_r101_vd_fpn_1x_softnms"]  # the same weights, tested with TTA
CLS_AWARE_R50_FPN = 70_378_766


def test_every_cascade_row_builds_with_the_reference_count():
    rows = [n for n in models.list_models() if n.startswith("cascade_") and "_gn_" not in n]
    assert sorted(rows) == sorted(COUNTS)
    built = {}
    for name in rows:
        detector, settings = models.architecture(name)
        key = tuple(sorted(settings.items())), detector
        if key not in built:
            built[key] = count(models.get(name, build_size=64))
        assert built[key] == COUNTS[name], name
    aware = CascadeRCNN(class_aware=True)  # REFERENCE.md's 7x7 R50-FPN form
    aware(np.zeros((1, 64, 64, 3), np.float32))
    assert count(aware) == CLS_AWARE_R50_FPN
    assert models.predicts_masks("cascade_mask_rcnn_r50_fpn")
    assert not models.predicts_masks("cascade_rcnn_r50_fpn")


@pytest.fixture(scope="module")
def small():
    # Seeded: the module's tests (the soft-NMS one needs more than 20 detections) must not
    # depend on what an earlier test in the same process drew from Keras' global generator.
    keras.utils.set_random_seed(0)
    model = models.get("cascade_rcnn_r50_fpn", num_classes=3, depth=18, norm="bn",
                       freeze_at=0, fpn_channels=32, fc_dim=64, test_pre_nms_top_k=60,
                       test_post_nms_top_k=24, roi_batch_per_image=64)
    # Large regression weights, so that every stage moves the boxes (and some past the image).
    rng = np.random.default_rng(0)
    for head in model.roi_heads.box_heads:
        kernel = head.regressor.kernel
        kernel.assign(rng.normal(0, 0.3, kernel.shape).astype(np.float32))
    return model


def _np_decode(deltas, rois, weights):
    """Faster R-CNN's decoding (dw, dh clamped at log(1000 / 16)), in numpy."""
    w, h = rois[:, 2] - rois[:, 0], rois[:, 3] - rois[:, 1]
    cx, cy = rois[:, 0] + 0.5 * w, rois[:, 1] + 0.5 * h
    dx, dy, dw, dh = (deltas / np.asarray(weights)).T
    dw, dh = np.minimum(dw, np.log(1000 / 16)), np.minimum(dh, np.log(1000 / 16))
    pcx, pcy, pw, ph = dx * w + cx, dy * h + cy, np.exp(dw) * w, np.exp(dh) * h
    return np.stack([pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2], axis=1)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_inference_refines_through_the_stages_and_averages_their_scores(small, monkeypatch):
    images = tf.random.stateless_normal([1, 96, 128, 3], [1, 2])
    sizes = tf.constant([[90.0, 120.0]])
    seen = {}
    postprocess = small.roi_heads.postprocess

    def spy(images, rois, valid, probs, deltas, image_sizes=None, coder=None):
        seen.update(rois=rois.numpy(), probs=probs.numpy(), deltas=deltas.numpy(),
                    box_weights=coder.weights)
        return postprocess(images, rois, valid, probs, deltas, image_sizes, coder)

    monkeypatch.setattr(small.roi_heads, "postprocess", spy)
    out = small(images, image_sizes=sizes)

    *pyramid, logits, deltas = small.network(images)
    rois, _ = small.proposals(images, logits, deltas, False, image_sizes=sizes)
    rois = rois.numpy()[0]
    weights = [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
    probs, moved = 0.0, 0.0
    for stage, head in enumerate(small.roi_heads.box_heads):
        if stage:
            refined = np.clip(_np_decode(stage_deltas[:, 1], rois, weights[stage - 1]), 0,
                              [120, 90, 120, 90])
            moved = max(moved, np.abs(refined - rois).max())
            rois = refined
        stage_logits, stage_deltas = head(small.roi_features(pyramid, rois[None]))
        assert stage_deltas.shape[2:] == (2, 4)  # class-agnostic: background, foreground
        stage_deltas = stage_deltas.numpy()[0]
        probs = probs + _softmax(stage_logits.numpy()[0])
    assert moved > 5  # the stages really moved the boxes
    np.testing.assert_allclose(seen["rois"][0], rois, atol=1e-3)
    # (float32: the boxes' rounding passes through two RoIAligns and three heads whose large
    # regression weights amplify it; thread counts change the sums' order. The deltas of these
    # random heads reach about 70, so they are compared to 1e-4 of their largest: a CI run saw
    # 1.5e-3 on an element near zero.)
    np.testing.assert_allclose(seen["probs"][0], probs / 3, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(seen["deltas"][0], stage_deltas, rtol=1e-3,
                               atol=1e-4 * np.abs(stage_deltas).max())
    assert seen["box_weights"] == (30.0, 30.0, 15.0, 15.0)
    # Every class's box is the last stage's foreground box.
    n = int(out["num_detections"][0])
    assert n > 0
    final = np.clip(_np_decode(stage_deltas[:, 1], rois, weights[2]), 0, [120, 90, 120, 90])
    for box in out["boxes"].numpy()[0, :n]:
        assert np.abs(final - box).max(axis=1).min() < 1e-2


def test_soft_nms_post_processing_is_paddles_multiclass_soft_nms(small, monkeypatch):
    images = tf.random.stateless_normal([1, 96, 128, 3], [3, 4])
    seen = {}
    postprocess = small.roi_heads.postprocess

    def spy(images, rois, valid, probs, deltas, image_sizes=None, coder=None):
        seen.update(rois=rois.numpy(), probs=probs.numpy(), deltas=deltas.numpy())
        return postprocess(images, rois, valid, probs, deltas, image_sizes, coder)

    monkeypatch.setattr(small.roi_heads, "postprocess", spy)
    # The post-processor part that nms='soft' with these settings builds.
    settings = dict(small.config, nms="soft", score_threshold=0.01, max_detections=300)
    monkeypatch.setattr(small.roi_heads, "postprocessor", POSTPROCESSORS.get("soft")(settings))
    out = small(images)
    boxes = np.clip(_np_decode(seen["deltas"][0, :, 1], seen["rois"][0], (30, 30, 15, 15)), 0,
                    [128, 96, 128, 96]).astype(np.float32)
    expected = ops.batched_multiclass_soft_nms(boxes[None], seen["probs"][:, :, 1:], sigma=0.5,
                                               score_threshold=0.01, max_total=300)
    n = int(expected["num_detections"][0])
    assert out["boxes"].shape == (1, 300, 4) and int(out["num_detections"][0]) == n > 20
    np.testing.assert_allclose(out["scores"][0, :n], expected["scores"][0, :n], rtol=1e-5)
    np.testing.assert_allclose(out["boxes"][0, :n], expected["boxes"][0, :n], atol=1e-2)


def test_later_stages_label_at_their_own_iou_and_keep_every_valid_box(small):
    gt = {"boxes": tf.constant([[[10.0, 10.0, 50.0, 50.0]]]), "classes": tf.constant([[2]]),
          "valid": tf.constant([[True]])}
    # IoU with the ground truth: 1, 0.65, 0.75 (26 and 30 of its 40 px width), 0, and an
    # invalid box.
    rois = tf.constant([[[10.0, 10.0, 50.0, 50.0], [10.0, 10.0, 36.0, 50.0],
                         [10.0, 10.0, 40.0, 50.0], [60.0, 60.0, 90.0, 90.0],
                         [10.0, 10.0, 50.0, 50.0]]])
    valid = tf.constant([[True, True, True, True, False]])
    heads = small.roi_heads
    for iou, positive in ((0.6, [1, 1, 1, 0, 0]), (0.7, [1, 0, 1, 0, 0])):
        s = heads.sample(rois, valid, gt, ops.ArgmaxMatcher(iou), subsample=False)
        np.testing.assert_array_equal(s["chosen"].numpy()[0], [1, 1, 1, 1, 0])
        np.testing.assert_array_equal(s["is_positive"].numpy()[0], positive)
        np.testing.assert_array_equal(s["classes"].numpy()[0], np.asarray(positive) * 3)


def _batch():
    images = tf.random.stateless_normal([2, 96, 128, 3], [5, 6])
    return {"images": images,
            "boxes": tf.constant([[[10, 20, 60, 90], [0, 0, 0, 0]],
                                  [[30, 30, 110, 90], [5, 5, 40, 40]]], tf.float32),
            "classes": tf.constant([[0, -1], [1, 2]]), "is_crowd": tf.zeros([2, 2], tf.bool)}


def test_training_losses_per_stage_scale_with_the_stage_weights(small):
    batch = _batch()
    tf.random.set_seed(3)
    losses = small.compute_losses(batch)
    stages = [f"rcnn_{kind}_loss_stage{i}" for i in (1, 2, 3) for kind in ("class", "box")]
    assert set(losses) == {"rpn_class_loss", "rpn_box_loss", "total_loss", *stages}
    assert all(np.isfinite(float(v)) and float(v) >= 0 for v in losses.values())
    assert float(losses["total_loss"]) == pytest.approx(
        sum(float(v) for k, v in losses.items() if k != "total_loss"), rel=1e-6)
    # The same sampling with every stage weighted 1: stage 2 doubles, stage 3 quadruples.
    small.config["cascade_loss_weights"] = (1.0, 1.0, 1.0)
    try:
        tf.random.set_seed(3)
        unweighted = small.compute_losses(batch)
    finally:
        small.config["cascade_loss_weights"] = (1.0, 0.5, 0.25)
    for stage, weight in ((1, 1.0), (2, 0.5), (3, 0.25)):
        key = f"rcnn_class_loss_stage{stage}"
        assert float(losses[key]) == pytest.approx(weight * float(unweighted[key]), rel=1e-5)
    # Every stage's classifier and regressor gets a gradient.
    with tf.GradientTape() as tape:
        total = small.compute_losses(batch)["total_loss"]
    variables = [v for h in small.roi_heads.box_heads for v in (h.classifier.kernel,
                                                                 h.regressor.kernel)]
    grads = tape.gradient(total, variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_cascade_mask_rcnn_predicts_masks_from_the_last_stage():
    model = models.get("cascade_mask_rcnn_r50_fpn", num_classes=2, depth=18, norm="bn",
                       freeze_at=0, fpn_channels=32, fc_dim=64, mask_conv_dim=16,
                       test_pre_nms_top_k=60, test_post_nms_top_k=24,
                       roi_batch_per_image=64)
    batch = _batch()
    batch["classes"] = tf.minimum(batch["classes"], 1)
    out = model(batch["images"])
    assert out["masks"].shape == (2, 100, 28, 28)
    masks = np.zeros([2, 2, 96, 128], np.float32)
    masks[0, 0, 20:90, 10:60] = 1
    masks[1, 0, 30:90, 30:110] = 1
    masks[1, 1, 5:40, 5:40] = 1
    batch["masks"] = tf.constant(masks)
    seen = {}
    mask_loss = model.roi_heads.mask_loss

    def spy(pyramid, sample, masks, training=True, res5=None):
        seen.update(sample)
        return mask_loss(pyramid, sample, masks, training, res5)

    model.roi_heads.mask_loss = spy
    losses = model.compute_losses(batch)
    assert np.isfinite(float(losses["mask_loss"])) and float(losses["mask_loss"]) > 0
    # The mask head trains on the last stage's positives: IoU >= 0.7 with their box.
    iou = tf.linalg.diag_part(ops.box_iou(
        seen["rois"], tf.gather(batch["boxes"], seen["matched"], batch_dims=1)))
    positive = seen["is_positive"].numpy()
    assert positive.any() and np.all(iou.numpy()[positive] >= 0.7 - 1e-6)


def test_the_multi_scale_test_row_is_the_softnms_row_under_tta():
    from tfdet.config import load_experiment
    from tfdet.tta import ZOO_SCALES
    exp = load_experiment("configs/cascade_rcnn_cls_aware_r101_vd_fpn_ms_test.gin")
    assert exp.model.tta and exp.model.name == "cascade_rcnn_cls_aware_r101_vd_fpn_ms_test"
    soft = load_experiment("configs/cascade_rcnn_cls_aware_r101_vd_fpn_1x_softnms.gin")
    assert not soft.model.tta
    assert models.architecture(exp.model.name) == models.architecture(soft.model.name)
    tta = exp.tta(object())
    assert tta.scales == ZOO_SCALES and tta.flips == (False, True)
    assert tta.max_long_side == 2000 and (tta.nms_iou, tta.vote_iou) == (0.5, 0.9)


def test_class_aware_cascade_passes_on_the_top_class_box_and_trains():
    model = models.get("cascade_rcnn_cls_aware_r101_vd_fpn_1x_softnms", num_classes=3, depth=18,
                       variant="b", norm="bn", freeze_at=0, fpn_channels=32, fc_dim=64,
                       roi_size=7, test_pre_nms_top_k=60, test_post_nms_top_k=24,
                       roi_batch_per_image=64)
    assert model.config["nms"] == "soft" and model.config["max_detections"] == 300
    rng = np.random.default_rng(1)
    for head in model.roi_heads.box_heads:
        kernel = head.regressor.kernel
        assert kernel.shape[-1] == 4 * 4  # a box per class and the background
        kernel.assign(rng.normal(0, 0.3, kernel.shape).astype(np.float32))
    images = tf.random.stateless_normal([1, 96, 128, 3], [1, 2])
    *pyramid, logits, deltas = model.network(images)
    rois, _ = model.proposals(images, logits, deltas, False)
    inputs, probs, last = model.roi_heads.stages(pyramid, rois, images)
    rois = rois.numpy()[0]
    weights = [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
    expected = 0.0
    for stage, head in enumerate(model.roi_heads.box_heads):
        if stage:
            top = stage_logits[:, 1:].argmax(axis=1) + 1
            rois = np.clip(_np_decode(stage_deltas[np.arange(len(top)), top], rois,
                                      weights[stage - 1]), 0, [128, 96, 128, 96])
            np.testing.assert_allclose(inputs[stage].numpy()[0], rois, atol=1e-3)
        stage_logits, stage_deltas = (t.numpy()[0] for t in head(
            model.roi_features(pyramid, rois[None].astype(np.float32))))
        expected = expected + _softmax(stage_logits)
    # (tolerances as in the class-agnostic test above: the last CI run differed by 2.5e-4)
    np.testing.assert_allclose(probs.numpy()[0], expected / 3, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(last.numpy()[0], stage_deltas, rtol=1e-3, atol=1e-3)
    tf.random.set_seed(0)
    losses = model.compute_losses(_batch())
    assert all(np.isfinite(float(v)) for v in losses.values())
    assert float(losses["rcnn_box_loss_stage3"]) > 0
