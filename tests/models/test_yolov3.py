"""YOLOv3: REFERENCE.md's DarkNet-53 count and every row, box decoding by hand, the loss of
known outputs against numpy, one compiled training step for all input sizes, and mixup."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import data, models
from tfdet.layers.norm import count_params_without_norm_statistics as count
from tfdet.training import Trainer

YOLOV3_D53_80 = 61_949_149  # REFERENCE.md
# ppdet 2.6.0's counts (../shared/reference/PADDLE.md); the R34 count needs res2a's projection
# shortcut, which Paddle's basic-block ResNets have.
PPDET_COUNTS = {"yolov3_mobilenet_v1": 24_571_197, "yolov3_r34": 42_309_053}
# Output convs on tips of 1024, 512, 256 channels, 3 anchors x (5 + K) each: K 80 -> 20.
VOC_DELTA = 3 * 60 * (1025 + 513 + 257)


def test_rows_build_and_darknet53_has_the_reference_count():
    rows = sorted(n for n in models.list_models()
                  if n.startswith("yolov3_") and "_dcn" not in n)  # DCN: test_dcn_rows.py
    assert rows == sorted(f"yolov3_{b}{v}" for b in ("darknet53", "mobilenet_v1", "r34")
                          for v in ("", "_voc"))
    counts = {name: count(models.get(name)) for name in rows}
    assert counts["yolov3_darknet53"] == YOLOV3_D53_80
    for name, expected in PPDET_COUNTS.items():
        assert counts[name] == expected, name
    for b in ("darknet53", "mobilenet_v1", "r34"):
        assert counts[f"yolov3_{b}"] - counts[f"yolov3_{b}_voc"] == VOC_DELTA


@pytest.fixture(scope="module")
def small():
    return models.get("yolov3_mobilenet_v1", num_classes=2, width=0.25, objectness_prior=0.5)


def test_one_set_of_weights_at_608_416_and_320_and_decoding_by_hand(small):
    for size in (608, 416, 320):
        outs = small.level_outputs(tf.zeros([1, size, size, 3]))
        assert [o.shape[1] for o in outs] == [size // 32, size // 16, size // 8]
        assert small(tf.zeros([1, size, size, 3]))["boxes"].shape == (1, 100, 4)
    # Zero outputs: the box is the anchor centred in its cell.
    boxes = small.decode(tf.zeros([1, 2, 3, 3, 7]), 0, 64).numpy()  # stride 32
    cx, cy = (0.5 + 2) * 32, (0.5 + 1) * 32  # row 1, column 2
    w, h = 156, 198  # the level's anchor 1 = anchor 7
    np.testing.assert_allclose(boxes[0, 1, 2, 1], [cx - w / 2, cy - h / 2, cx + w / 2,
                                                   cy + h / 2], rtol=1e-6)


def _np_iou(a, b):
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_loss_of_zero_outputs_matches_numpy(small, monkeypatch):
    """With every output 0 each sigmoid CE is log 2; the terms then follow from the
    assignment, the box weights, the ignore rule and the mixup scores alone."""
    size, k = 128, 2
    outs = [tf.zeros([1, size // s, size // s, 3, 5 + k]) for s in (32, 16, 8)]
    monkeypatch.setattr(small, "level_outputs", lambda images, training=False: outs)
    gt = np.array([[20.0, 30.0, 60.0, 50.0], [64.0, 16.0, 128.0, 112.0]])  # 40x20, 64x96
    scores = np.array([1.0, 0.6])
    batch = {"images": tf.zeros([1, size, size, 3]), "boxes": tf.constant(gt[None], tf.float32),
             "classes": tf.constant([[1, 0]]), "is_crowd": tf.zeros([1, 2], tf.bool),
             "scores": tf.constant(scores[None], tf.float32)}
    losses = {k_: float(v) for k_, v in small.compute_losses(batch).items()}
    anchors = np.array(small.config["anchors"])
    log2 = np.log(2.0)
    # Box 0 (40 x 20): best anchor by shape IoU (33, 23) = index 2 (stride 8); box 1
    # (64 x 96): (59, 119) = index 5 (stride 16).
    wh = gt[:, 2:] - gt[:, :2]
    inter = np.minimum(wh[:, None, 0], anchors[:, 0]) * np.minimum(wh[:, None, 1], anchors[:, 1])
    best = (inter / (wh.prod(1)[:, None] + anchors.prod(1) - inter)).argmax(1)
    assert list(best) == [2, 5]
    weight = (2 - wh.prod(1) / size**2) * scores
    xy = (weight * 2 * log2).sum()
    wh_l1 = (weight * np.abs(np.log(wh / anchors[best])).sum(1)).sum()
    # Objectness: negatives are the predictions whose anchor box (zero outputs) overlaps no
    # ground truth by more than 0.7, minus the two positives.
    negatives = 0
    for level, stride in enumerate((32, 16, 8)):
        g = size // stride
        mask = small.config["anchor_masks"][level]
        c = (np.arange(g) + 0.5) * stride
        cy, cx = np.meshgrid(c, c, indexing="ij")
        for a in mask:
            aw, ah = anchors[a]
            boxes = np.stack([cx - aw / 2, cy - ah / 2, cx + aw / 2, cy + ah / 2], -1)
            boxes = np.clip(boxes.reshape(-1, 4), -1e9, 1e9)
            negatives += int((_np_iou(boxes, gt).max(1) <= 0.7).sum())
    positives_ignored = 0  # both positives' anchor boxes overlap their box by < 0.7
    objectness = (scores.sum() + negatives - 2 + positives_ignored) * log2
    classes = (k * log2 * scores).sum()
    assert losses["xy_loss"] == pytest.approx(xy, rel=1e-5)
    assert losses["wh_loss"] == pytest.approx(wh_l1, rel=1e-5)
    assert losses["objectness_loss"] == pytest.approx(objectness, rel=1e-5)
    assert losses["class_loss"] == pytest.approx(classes, rel=1e-5)


def test_random_input_sizes_reuse_one_compiled_step():
    model_fn = lambda: models.get("yolov3_mobilenet_v1", num_classes=2, width=0.25)  # noqa
    trainer = Trainer(model_fn, lambda: tf.keras.optimizers.SGD(1e-3))
    for size in (160, 192, 224, 256):
        batch = {"images": tf.random.normal([2, size, size, 3]),
                 "boxes": tf.constant([[[10.0, 10.0, 90.0, 120.0]]] * 2),
                 "classes": tf.constant([[1], [0]]), "is_crowd": tf.zeros([2, 1], tf.bool)}
        losses, finite = trainer.train_step(batch)
        assert finite and np.isfinite(losses["total_loss"])
    # The first size traces, the second retraces for any shape, the rest reuse it.
    assert trainer.traces() <= 2


def test_batch_mixup_and_random_size():
    images = tf.stack([tf.fill([64, 64, 3], 10.0), tf.fill([64, 64, 3], 50.0)])
    batch = {"images": images, "boxes": tf.constant([[[0.0, 0, 32, 32]], [[8.0, 8, 40, 60]]]),
             "classes": tf.constant([[0], [1]]), "is_crowd": tf.zeros([2, 1], tf.bool),
             "difficult": tf.zeros([2, 1], tf.bool), "num_boxes": tf.constant([1, 1])}
    augment = data.YoloBatchAugment(sizes=(96,), mixup_until=10, seed=3)
    out = augment(batch, tf.constant(0, tf.int64))
    lam = out["scores"].numpy()[:, 0]
    assert out["images"].shape == (2, 96, 96, 3) and np.all((lam > 0) & (lam < 1))
    np.testing.assert_allclose(out["scores"].numpy()[:, 1], 1 - lam, rtol=1e-6)
    # image 0 mixes with image 1 (the batch rolled by one): 10 lam + 50 (1 - lam).
    np.testing.assert_allclose(out["images"].numpy()[0, 40, 40, 0], 10 * lam[0] + 50 * (1 - lam[0]),
                               rtol=1e-4)
    np.testing.assert_allclose(out["boxes"].numpy()[0], [[0, 0, 48, 48], [12, 12, 60, 90]])
    np.testing.assert_array_equal(out["classes"].numpy(), [[0, 1], [1, 0]])
    late = augment(batch, tf.constant(10, tf.int64))  # mixup is off from step 10
    np.testing.assert_array_equal(late["scores"].numpy(), [[1, 0], [1, 0]])
    np.testing.assert_array_equal(late["classes"].numpy(), [[0, -1], [1, -1]])


def test_a_model_without_weights_says_it_is_untrained(monkeypatch, caplog):
    monkeypatch.setattr(models, "_WARNED_UNTRAINED", set())
    with caplog.at_level("WARNING"):
        models.get("yolov3_mobilenet_v1", num_classes=2, width=0.25, restoring=True)
        assert not caplog.records  # a checkpoint is restored next: no warning
        models.get("yolov3_mobilenet_v1", num_classes=2, width=0.25)
        models.get("yolov3_mobilenet_v1", num_classes=2, width=0.25)  # once per row
    said = [r.getMessage() for r in caplog.records if "random weights" in r.getMessage()]
    assert len(said) == 1 and "convert_weights.py" in said[0] and ".pdparams" in said[0]
