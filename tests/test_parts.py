"""Detectors receive their parts: the part objects compute what the functions they wrap
compute on hand-made cases, a detector given hand-built parts equals the one its settings
build, given parts are the ones used, and a user's registered backbone is a config value."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet import models, ops
from tfdet.backbones import resnet
from tfdet.detectors import FasterRCNN, MaskRCNN, RetinaNet
from tfdet.necks import FPNNeck
from tfdet.registry import BACKBONES, NECKS, POSTPROCESSORS, ROI_BOX_HEADS

SMALL = dict(num_classes=2, depth=18, norm="bn", freeze_at=0, fpn_channels=32)


def test_matcher_sampler_and_coder_by_hand():
    # Anchor 0 overlaps the box by IoU 50/150 = 1/3, anchor 1 by 100/100 = 1, anchor 2 not.
    anchors = tf.constant([[[0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]]], tf.float32)
    gt = tf.constant([[[5, 0, 15, 10], [0, 0, 0, 0]]], tf.float32)
    valid = tf.constant([[True, False]])
    matched, labels = ops.ArgmaxMatcher(0.7, 0.3)(anchors, gt, valid)
    np.testing.assert_array_equal(labels.numpy(), [[-1, 1, 0]])
    np.testing.assert_array_equal(matched.numpy(), [[0, 0, 0]])
    # negative_iou defaults to positive_iou: no ignored band (the RoI heads' rule).
    _, labels = ops.ArgmaxMatcher(0.3)(anchors, gt, valid)
    np.testing.assert_array_equal(labels.numpy(), [[1, 1, 0]])

    sampler = ops.BalancedSampler(4, 0.25)
    assert sampler.max_positive == 1
    positive, negative = sampler(tf.constant([[1, 1, 1, 0, 0, 0, 0, 0, -1]]))
    assert int(tf.reduce_sum(tf.cast(positive, tf.int32))) == 1
    assert int(tf.reduce_sum(tf.cast(negative, tf.int32))) == 3
    assert not bool(positive[0, 8] | negative[0, 8])

    # Box (10, 10, 30, 50) from anchor (0, 0, 20, 20): centre moves (10, 20) on a 20 x 20
    # anchor, size x1 / x2: deltas (10 * 0.5, 10 * 1, 5 * log 1, 5 * log 2) at [10, 10, 5, 5].
    coder = ops.BoxCoder((10, 10, 5, 5))
    box, anchor = tf.constant([[10.0, 10, 30, 50]]), tf.constant([[0.0, 0, 20, 20]])
    np.testing.assert_allclose(coder.encode(box, anchor).numpy(),
                               [[5, 10, 0, 5 * np.log(2)]], rtol=1e-5)
    np.testing.assert_allclose(coder.decode(coder.encode(box, anchor), anchor).numpy(),
                               box.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="4 numbers"):
        ops.BoxCoder((1, 1))


def test_pooler_and_anchor_layouts():
    # One stride: RoIAlign on that map. A constant map pools to the constant; a map equal to
    # its x coordinate pools to the bins' centres (a 32 px box on stride 16: bins of 1 cell).
    x = tf.tile(tf.range(8, dtype=tf.float32)[None, None, :, None], [1, 8, 1, 1])
    pooled = ops.RoIPooler(2, (16,), sampling_ratio=2, aligned=True)(
        [x], tf.constant([[[16.0, 16, 48, 48]]]))
    np.testing.assert_allclose(pooled.numpy()[0, 0, 0, :, 0], [1.0, 2.0], atol=1e-5)
    # Several strides: each RoI from its FPN level (a 224 px box from P4, a 56 px one from P2).
    levels = [tf.fill([1, 256 // s, 256 // s, 1], float(s)) for s in (4, 8, 16, 32)]
    pooled = ops.RoIPooler(2, (4, 8, 16, 32))(levels + [tf.zeros([1, 1, 1, 1])],
                                               tf.constant([[[0.0, 0, 224, 224],
                                                             [0.0, 0, 56, 56]]]))
    np.testing.assert_allclose(pooled.numpy()[0, :, 0, 0, 0], [16.0, 4.0], rtol=1e-5)
    with pytest.raises(ValueError, match="consecutive powers of 2"):
        ops.RoIPooler(7, (4, 16))

    fpn = ops.rcnn_anchor_generator((4, 8), (32, 64), (1.0,))
    assert fpn.sizes == (32.0, 64.0) and fpn.scales == (1.0,)
    c4 = ops.rcnn_anchor_generator((16,), (32, 64, 128), (0.5, 1.0))
    assert c4.sizes == (32.0,) and c4.scales == (1.0, 2.0, 4.0)
    assert c4.num_anchors_per_location == 6
    with pytest.raises(ValueError, match="3 anchor sizes for 2 levels"):
        ops.rcnn_anchor_generator((4, 8), (32, 64, 128))


def test_a_retinanet_given_built_parts_equals_the_one_its_settings_build():
    """The backbone and neck built by hand (the registered builders' work) give the same
    network, layer for layer, and with the same weights the same detections."""
    settings = dict(SMALL, anchor_size=4)
    from_settings = RetinaNet(**settings)
    body = resnet(18, "b", norm="bn", freeze_at=0)
    neck = FPNNeck(dict(min_level=3, max_level=7, fpn_channels=32, fpn_extra="conv_c5"))
    given = RetinaNet(**settings, parts={"backbone": body, "neck": neck})
    assert ([w.path for w in given.network.weights]
            == [w.path for w in from_settings.network.weights])
    given.network.set_weights(from_settings.network.get_weights())
    images = tf.random.stateless_normal([1, 128, 128, 3], [1, 2])
    a, b = from_settings(images), given(images)
    np.testing.assert_allclose(a["boxes"].numpy(), b["boxes"].numpy(), atol=1e-4)
    np.testing.assert_allclose(a["scores"].numpy(), b["scores"].numpy(), atol=1e-5)


class _Spy:
    """Wraps a part and counts its calls."""

    def __init__(self, part):
        self.part, self.calls = part, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.part(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.part, name)


def test_given_parts_are_the_ones_a_faster_rcnn_uses():
    matcher = _Spy(ops.ArgmaxMatcher(0.6))
    postprocessor = _Spy(ops.MultiClassNMS(0.5, 0.0, 5, 5))
    model = FasterRCNN(**SMALL, fc_dim=32, test_pre_nms_top_k=20, test_post_nms_top_k=10,
                       train_pre_nms_top_k=50, train_post_nms_top_k=20,
                       parts={"roi_matcher": matcher, "postprocessor": postprocessor})
    assert model.roi_heads.matcher is matcher
    images = tf.random.stateless_normal([1, 64, 64, 3], [3, 4])
    out = model(images)
    assert postprocessor.calls == 1 and out["boxes"].shape == (1, 5, 4)
    batch = {"images": images, "boxes": tf.constant([[[8.0, 8, 40, 40]]]),
             "classes": tf.constant([[1]]), "is_crowd": tf.zeros([1, 1], tf.bool)}
    losses = model.compute_losses(batch)
    assert matcher.calls == 1 and np.isfinite(float(losses["total_loss"]))
    with pytest.raises(ValueError, match="takes the parts .*unknown mask_head"):
        FasterRCNN(**SMALL, parts={"mask_head": object()})
    # Mask R-CNN adds its mask parts to the names it takes.
    assert set(MaskRCNN.part_names) == set(FasterRCNN.part_names) | {"mask_head", "mask_pooler"}


def _tiny_backbone(settings, last_stage=5):
    """A user's backbone: strided convs giving C2..C{last_stage} at strides 4, 8, ..."""
    images = keras.Input([None, None, 3])
    x = keras.layers.Conv2D(8, 3, 4, padding="same", activation="relu", name="tiny_c2")(images)
    outputs = [x]
    for stage in range(3, last_stage + 1):
        x = keras.layers.Conv2D(8 * 2**(stage - 2), 3, 2, padding="same", activation="relu",
                                name=f"tiny_c{stage}")(x)
        outputs.append(x)
    return keras.Model(images, outputs, name="tiny")


@pytest.fixture
def tiny_backbone():
    BACKBONES.register("tiny_test")(_tiny_backbone)
    yield "tiny_test"
    BACKBONES._builders.pop("tiny_test")


def test_a_registered_backbone_is_a_setting_of_every_resnet_family(tiny_backbone):
    """`backbone = 'tiny_test'` in a detector's settings (a config's architecture.backbone)
    builds it, for the FPN and the C4 layout alike (the C4 neck asks for C2-C4 only)."""
    fpn = models.get("faster_rcnn_r50_fpn", backbone=tiny_backbone, num_classes=2,
                     fpn_channels=16, fc_dim=32, build_size=64)
    assert fpn.network.get_layer("tiny_c5") is not None
    c4 = models.get("faster_rcnn_r50", backbone=tiny_backbone, num_classes=2, build_size=64)
    names = {layer.name for layer in c4.network.layers}
    assert "tiny_c4" in names and "tiny_c5" not in names
    assert c4.roi_heads.box_head.stage.input_shape[-1] == 32  # res5 on tiny's 32-channel C4
    retina = models.get("retinanet_r50_fpn", backbone=tiny_backbone, num_classes=2,
                        fpn_channels=16, build_size=128)
    assert retina(tf.zeros([1, 128, 128, 3]))["boxes"].shape == (1, 100, 4)


def test_the_registries_name_what_they_hold():
    assert {"resnet"} <= set(BACKBONES.names())
    assert {"fpn", "c4"} <= set(NECKS.names())
    assert {"fc", "res5"} <= set(ROI_BOX_HEADS.names())
    assert {"hard", "soft"} <= set(POSTPROCESSORS.names())
    with pytest.raises(ValueError, match="unknown neck 'bifpn'; registered: c4, fpn"):
        FasterRCNN(**SMALL, neck="bifpn")
    with pytest.raises(ValueError, match="class-agnostic heads"):
        ROI_BOX_HEADS.get("res5")(dict(roi_size=14, depth=18, variant="b", groups=1,
                                       group_width=64, norm="bn"), 2, 8, "h", True)
