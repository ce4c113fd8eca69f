"""Faster R-CNN FPN: the reference parameter count for every registered row, proposal
generation by hand, and the inference / training interfaces."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import models
from tfdet.layers.norm import count_params_without_norm_statistics as count

FASTER_R50_FPN_81 = 41_757_156  # REFERENCE.md, 80 classes + background
FASTER_R50_C4_81 = 33_852_960
VD_STEM = 23_527_264 - 23_508_032
R101_BODY = 42_500_160 - 23_508_032  # torchvision resnet101 less fc, less the R50 body
X101_BODY = 83_455_272 - 2_049_000 + VD_STEM - 23_508_032


def check_row_counts(prefix, num_rows, fpn_reference, c4_reference):
    """Every row named prefix* builds with its reference count (FPN or C4) plus its
    backbone's difference from the R50 body; one build per distinct architecture. (The DCN
    and GN rows: test_dcn_rows.py.)"""
    rows = [n for n in models.list_models()
            if n.startswith(prefix) and "_dcn_" not in n and "_gn_" not in n]
    assert len(rows) == num_rows
    expected = {(50, "b", 1): 0, (50, "d", 1): VD_STEM, (101, "b", 1): R101_BODY,
                (101, "d", 1): R101_BODY + VD_STEM, (101, "d", 64): X101_BODY}
    built = {}
    for name in rows:
        _, settings = models.architecture(name)
        c4 = settings.get("neck") == "c4"
        key = (settings["depth"], settings.get("variant", "b"), settings.get("groups", 1))
        if (key, c4) not in built:
            built[key, c4] = count(models.get(name, build_size=64))  # counts do not depend on it
        reference = c4_reference if c4 else fpn_reference
        assert built[key, c4] == reference + expected[key], name


def test_every_faster_rcnn_row_builds_with_the_reference_count():
    check_row_counts("faster_rcnn_", 13, FASTER_R50_FPN_81, FASTER_R50_C4_81)
    c4 = models.get("faster_rcnn_r50", build_size=64)
    assert c4.name == "faster_rcnn_r50_1x"
    # The build pass sends few proposals through the heads (the zoo's 1000 through res5 took
    # 10 GB); the model keeps the zoo's settings.
    assert (c4.config["test_pre_nms_top_k"], c4.config["test_post_nms_top_k"]) == (6000, 1000)
    assert models.get("faster_rcnn_r50_fpn").name == "faster_rcnn_r50_fpn_1x"


@pytest.fixture(scope="module")
def small():
    return models.get("faster_rcnn_r50_fpn", num_classes=2, depth=18, norm="bn", freeze_at=0,
                      fpn_channels=32, fc_dim=64, test_pre_nms_top_k=50,
                      test_post_nms_top_k=20)


def test_proposals_decode_the_anchor_with_the_highest_objectness(small):
    images = tf.zeros([1, 128, 128, 3])
    anchors, counts = small.anchor_generator(128, 128)
    n = int(anchors.shape[0])
    assert n == sum((128 // s) ** 2 * 3 for s in (4, 8, 16, 32, 64))
    logits = np.full((1, n), -8.0, np.float32)
    deltas = np.zeros((1, n, 4), np.float32)
    a = anchors.numpy()
    inside = np.flatnonzero((a[:, 0] >= 0) & (a[:, 1] >= 0) & (a[:, 2] <= 128)
                            & (a[:, 3] <= 128))
    target = int(inside[len(inside) // 2])
    logits[0, target] = 6.0
    deltas[0, target] = [0.25, 0.0, 0.0, 0.0]  # a quarter of the width to the right
    boxes, valid = small.proposals(images, tf.constant(logits), tf.constant(deltas), False)
    width = a[target, 2] - a[target, 0]
    expected = np.clip(a[target] + [0.25 * width, 0, 0.25 * width, 0], 0, 128)
    np.testing.assert_allclose(boxes[0, 0].numpy(), expected, atol=1e-3)
    assert boxes.shape == (1, 20, 4) and bool(valid[0, 0])


def test_inference_and_training_outputs(small):
    images = tf.random.stateless_normal([2, 96, 128, 3], [5, 6])
    out = small(images)
    assert out["boxes"].shape == (2, 100, 4) and out["classes"].dtype == tf.int32
    n = out["num_detections"].numpy()
    assert np.all(out["classes"].numpy()[0, :n[0]] < 2)
    assert np.all(out["boxes"].numpy()[..., 2] <= 128) and np.all(out["boxes"].numpy() >= 0)
    batch = {"images": images,
             "boxes": tf.constant([[[10, 20, 60, 90], [0, 0, 0, 0]],
                                   [[30, 30, 110, 90], [5, 5, 40, 40]]], tf.float32),
             "classes": tf.constant([[0, -1], [1, 0]]), "is_crowd": tf.zeros([2, 2], tf.bool)}
    losses = small.compute_losses(batch)
    assert set(losses) == {"rpn_class_loss", "rpn_box_loss", "rcnn_class_loss",
                           "rcnn_box_loss", "total_loss"}
    # At initialisation the RPN predicts ~0.5 everywhere: BCE ~ log 2 on the sampled anchors.
    assert float(losses["rpn_class_loss"]) == pytest.approx(np.log(2), rel=0.05)
    assert all(np.isfinite(float(v)) and float(v) >= 0 for v in losses.values())
    assert float(losses["total_loss"]) == pytest.approx(
        sum(float(v) for k, v in losses.items() if k != "total_loss"), rel=1e-6)


def test_c4_form_pools_14x14_rois_from_c4_through_res5():
    m = models.get("faster_rcnn_r50", num_classes=2, depth=18, norm="bn", freeze_at=0,
                   test_pre_nms_top_k=200, test_post_nms_top_k=30)
    assert m.anchor_generator.strides == (16,)
    assert m.anchor_generator.num_anchors_per_location == 15
    images = tf.random.stateless_normal([1, 128, 160, 3], [7, 8])
    *features, _, _ = m.network(images)
    assert len(features) == 1 and features[0].shape[1:] == (8, 10, 256)  # C4 of ResNet-18
    rois = tf.constant([[[0.0, 0.0, 64.0, 64.0], [32.0, 16.0, 160.0, 128.0]]])
    pooled = m.roi_features(features, rois)
    assert pooled.shape == (1, 2, 14, 14, 256)
    logits, deltas = m.box_head(pooled)
    assert logits.shape == (1, 2, 3) and deltas.shape == (1, 2, 3, 4)
    out = m(images)
    assert out["boxes"].shape == (1, 100, 4)
    batch = {"images": images, "boxes": tf.constant([[[10.0, 20.0, 90.0, 110.0]]]),
             "classes": tf.constant([[1]]), "is_crowd": tf.zeros([1, 1], tf.bool)}
    losses = m.compute_losses(batch)
    assert all(np.isfinite(float(v)) for v in losses.values())


def test_valid_proposals_cut_to_a_bucket_only_when_the_valid_ones_come_first():
    from tfdet.detectors.roi_heads import PROPOSAL_BUCKET, valid_proposals
    rois = tf.random.stateless_uniform([2, 300, 4], [1, 2])
    valid = tf.sequence_mask([70, 10], 300)
    cut, cut_valid = valid_proposals(rois, valid)
    assert cut.shape[1] == 2 * PROPOSAL_BUCKET  # 70 rounded up to 128
    np.testing.assert_array_equal(cut.numpy(), rois.numpy()[:, :128])
    np.testing.assert_array_equal(cut_valid.numpy(), valid.numpy()[:, :128])
    assert valid_proposals(rois, tf.zeros([2, 300], tf.bool))[0].shape[1] == PROPOSAL_BUCKET
    assert valid_proposals(rois[:, :40], valid[:, :40])[0].shape[1] == 40  # at most P
    holes = valid.numpy().copy()
    holes[0, 5] = False  # not a prefix: nothing is cut
    assert valid_proposals(rois, tf.constant(holes))[0].shape[1] == 300


def test_box_head_on_the_valid_proposals_gives_the_same_detections(small, monkeypatch):
    from tfdet.detectors import roi_heads
    images = tf.random.stateless_normal([2, 96, 128, 3], [5, 6])
    *pyramid, _, _ = small.network(images)
    rois = tf.random.stateless_uniform([2, 200, 4], [3, 4]) * [60.0, 40.0, 60.0, 40.0]
    rois = tf.concat([rois[..., :2], rois[..., :2] + 8.0 + rois[..., 2:]], -1)
    valid = tf.sequence_mask([90, 30], 200)
    heads = small.roi_heads
    cut = heads.predict(pyramid, rois, valid, images)
    monkeypatch.setattr(roi_heads, "valid_proposals", lambda r, v: (r, v))
    full = heads.predict(pyramid, rois, valid, images)
    assert int(cut["num_detections"][0]) > 0
    for key in ("boxes", "scores", "classes", "num_detections"):
        np.testing.assert_allclose(cut[key].numpy(), full[key].numpy(), atol=1e-5, err_msg=key)
