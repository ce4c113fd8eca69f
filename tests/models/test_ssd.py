"""SSD: parameter counts from a hand formula (and REFERENCE.md's SSD300 figure), prior boxes
by hand, hard negative mining and the multibox loss against numpy, and the decoder."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import models, ops
from tfdet.layers.norm import count_params_without_norm_statistics as count
from tfdet.losses import hard_negatives

SSD300_81 = 34_305_206  # REFERENCE.md


def conv(cin, cout, k=3, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def vgg_ssd_count(classes, extras, sources, priors):
    """VGG16 convs + fc6 / fc7 + L2Norm scale + extra layers + 3x3 heads."""
    body = sum(conv(a, b) for a, b in [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256),
                                       (256, 256), (256, 256), (256, 512), (512, 512),
                                       (512, 512), (512, 512), (512, 512), (512, 512)])
    body += conv(512, 1024) + conv(1024, 1024, 1) + 512
    cin = 1024
    for f1, f2, _, _, k in extras:
        body += conv(cin, f1, 1) + conv(f1, f2, k)
        cin = f2
    heads = sum(conv(c, a * 4) + conv(c, a * (classes + 1)) for c, a in zip(sources, priors))
    return body + heads


def test_ssd_rows_build_with_the_hand_counted_weights_and_prior_counts():
    e300 = [(256, 512, 1, 2, 3), (128, 256, 1, 2, 3), (128, 256, 0, 1, 3), (128, 256, 0, 1, 3)]
    e512 = [(256, 512, 1, 2, 3)] + [(128, 256, 1, 2, 3)] * 3 + [(128, 256, 1, 1, 4)]
    s300, p300 = [512, 1024, 512, 256, 256, 256], [4, 6, 6, 6, 4, 4]
    s512, p512 = s300 + [256], [4, 6, 6, 6, 6, 4, 4]
    assert vgg_ssd_count(80, e300, s300, p300) == SSD300_81  # the formula is the reference's
    expected = {"ssd_vgg16_300": (vgg_ssd_count(80, e300, s300, p300), 8732),
                "ssd_vgg16_300_voc": (vgg_ssd_count(20, e300, s300, p300), 8732),
                "ssd_vgg16_512": (vgg_ssd_count(80, e512, s512, p512), 24564),
                "ssd_vgg16_512_voc": (vgg_ssd_count(20, e512, s512, p512), 24564)}
    rows = [n for n in models.list_models() if n.startswith("ssd_")]
    assert sorted(rows) == sorted(list(expected) + ["ssd_mobilenet_v1_voc"])
    for name, (weights, priors) in expected.items():
        model = models.get(name)
        assert (count(model), model.num_priors) == (weights, priors), name

    # MobileNetV1-SSD: stem + 13 depthwise-separable blocks with BN (gamma, beta), BN extras,
    # 1x1 heads with 3 priors on C4 and 6 elsewhere; 19, 10, 5, 3, 2, 1 maps at 300.
    model = models.get("ssd_mobilenet_v1_voc")
    bn = 2
    body = conv(3, 32, bias=False) + bn * 32
    cin = 32
    for cout, _ in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 \
            + [(1024, 2), (1024, 1)]:
        body += 9 * cin + bn * cin + conv(cin, cout, 1, False) + bn * cout
        cin = cout
    for f1, f2 in [(256, 512), (128, 256), (128, 256), (64, 128)]:
        body += conv(cin, f1, 1, False) + bn * f1 + conv(f1, f2, 3, False) + bn * f2
        cin = f2
    sources, priors = [512, 1024, 512, 256, 256, 128], [3, 6, 6, 6, 6, 6]
    heads = sum(conv(c, a * 4, 1) + conv(c, a * 21, 1) for c, a in zip(sources, priors))
    assert count(model) == body + heads
    assert model.feature_sizes == (19, 10, 5, 3, 2, 1)
    assert model.num_priors == 19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6


def test_priors_by_hand():
    p = ops.ssd_priors([2], 300, [30], [60], [[2]], [8])
    r2 = np.sqrt(2)
    first = np.array([[4 - 15, 4 - 15, 4 + 15, 4 + 15],
                      [4 - 15 * r2, 4 - 15 / r2, 4 + 15 * r2, 4 + 15 / r2],
                      [4 - 15 / r2, 4 - 15 * r2, 4 + 15 / r2, 4 + 15 * r2],
                      [4 - np.sqrt(1800) / 2] * 2 + [4 + np.sqrt(1800) / 2] * 2])
    np.testing.assert_allclose(p[:4], first, rtol=1e-6)
    np.testing.assert_allclose(p[4:8], first + [8, 0, 8, 0], rtol=1e-6)  # next cell: x + 8
    np.testing.assert_allclose(p[8], first[0] + [0, 8, 0, 8], rtol=1e-6)  # next row: y + 8
    caffe = ops.ssd_priors([2], 300, [30], [60], [[2]], [8], min_max_order=True)
    np.testing.assert_allclose(caffe[:4], first[[0, 3, 1, 2]], rtol=1e-6)
    assert ops.ssd_priors([2], 300, [30], [60], [[2]], [8], clip=True).min() == 0.0
    assert ops.expand_aspect_ratios([2, 3, 0.5]) == [1.0, 2.0, 0.5, 3.0, 1 / 3]


def test_hard_negatives_take_three_per_positive_by_loss():
    loss = tf.constant([[0.1, 5.0, 0.3, 0.9, 0.2, 0.8, 0.7, 0.05],
                        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    positive = tf.constant([[True] + [False] * 7, [False] * 8])
    negative = ~positive
    got = hard_negatives(loss, positive, negative, 3.0).numpy()
    # image 0: 1 positive -> the 3 highest-loss negatives (5.0 is the positive's own loss).
    np.testing.assert_array_equal(got[0], [0, 1, 0, 1, 0, 1, 0, 0])
    assert not got[1].any()  # no positive, no negatives


def _np_multibox_loss(priors, boxes, classes, logits, deltas):
    """Independent numpy SSD loss for one image (ground truth all valid)."""
    x1 = np.maximum(priors[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(priors[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(priors[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(priors[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    iou = inter / (area(priors)[:, None] + area(boxes)[None] - inter)
    matched = iou.argmax(1)
    positive = iou.max(1) >= 0.5
    for g in range(len(boxes)):  # each box's best prior
        best = np.flatnonzero(iou[:, g] == iou[:, g].max())
        positive[best] = True
        matched[best] = g
    target = np.where(positive, classes[matched] + 1, 0)
    z = logits - logits.max(1, keepdims=True)
    ce = -(z[np.arange(len(z)), target] - np.log(np.exp(z).sum(1)))
    n_pos = positive.sum()
    neg_loss = np.where(positive, -1, ce)
    chosen = np.argsort(-neg_loss, kind="stable")[:3 * n_pos]
    class_loss = (ce[positive].sum() + ce[chosen].sum()) / n_pos
    g = boxes[matched]
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    px, py = priors[:, 0] + pw / 2, priors[:, 1] + ph / 2
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    t = np.stack([10 * ((g[:, 0] + gw / 2) - px) / pw, 10 * ((g[:, 1] + gh / 2) - py) / ph,
                  5 * np.log(gw / pw), 5 * np.log(gh / ph)], 1)
    d = np.abs(deltas - t)
    sl1 = np.where(d < 1, 0.5 * d * d, d - 0.5).sum(1)
    return class_loss, sl1[positive].sum() / n_pos


@pytest.fixture(scope="module")
def small_ssd():
    return models.get("ssd_mobilenet_v1_voc", num_classes=3, image_size=160, width=0.25)


def test_multibox_loss_matches_numpy(small_ssd):
    images = tf.random.stateless_normal([1, 160, 160, 3], [1, 2])
    boxes = np.array([[[20, 30, 90, 120], [100, 10, 150, 60], [0, 0, 0, 0]]], np.float32)
    batch = {"images": images, "boxes": tf.constant(boxes),
             "classes": tf.constant([[2, 0, -1]]), "is_crowd": tf.zeros([1, 3], tf.bool)}
    losses = small_ssd.compute_losses(batch, training=False)
    logits, deltas = small_ssd.network(images, training=False)
    class_loss, box_loss = _np_multibox_loss(small_ssd.priors.numpy().astype(np.float64),
                                             boxes[0, :2].astype(np.float64), np.array([2, 0]),
                                             logits[0].numpy().astype(np.float64),
                                             deltas[0].numpy().astype(np.float64))
    assert float(losses["class_loss"]) == pytest.approx(class_loss, rel=1e-4)
    assert float(losses["box_loss"]) == pytest.approx(box_loss, rel=1e-4)


def test_decoder_decodes_against_the_priors_and_thresholds_scores(small_ssd):
    n = small_ssd.num_priors
    priors = small_ssd.priors.numpy()
    logits = np.full((1, n, 4), -5.0, np.float32)
    logits[..., 0] = 5.0  # background everywhere ...
    big = np.argmax((priors[:, 2] - priors[:, 0]) * (priors[:, 3] - priors[:, 1])
                    * (priors.min(1) >= 0) * (priors.max(1) <= 160))
    logits[0, big] = [-5, 5, -5, -5]  # ... except one prior, class 0 (index 1)
    out = small_ssd.postprocess(tf.zeros([1, 160, 160, 3]), tf.constant(logits),
                                tf.zeros([1, n, 4]))
    np.testing.assert_allclose(out["boxes"][0, 0].numpy(), priors[big], atol=1e-3)
    assert int(out["classes"][0, 0]) == 0 and float(out["scores"][0, 0]) > 0.99
    # Every other prior scores softmax(-5 vs 5) ~ 4.5e-5 for each class: below 0.01.
    assert int(out["num_detections"][0]) == 1
