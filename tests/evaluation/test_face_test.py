"""The face test (tfdet.evaluation.face_test) against PaddleDetection 2.6.0's own functions
(tests/parity/fixtures/face_test.npz, scripts/make_paddle_fixtures.py), by hand, and on a
face row at each image's own size."""
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfdet.evaluation.face_test import FaceTest, bbox_vote, face_predictor, get_shrink

FIXTURE = pathlib.Path(__file__).parents[1] / "parity" / "fixtures" / "face_test.npz"


@pytest.fixture(scope="module")
def paddle_sample():
    return np.load(FIXTURE)


def test_get_shrink_by_hand_and_as_paddle(paddle_sample):
    # 768 x 1024: min(sqrt(2^31 / 577 / 786432) = 2.175, sqrt(2777088 / 786432) = 1.8792)
    # truncated to 1.87, less 0.3 and 0.1 (1.5 <= 1.57 < 2): 1.47.
    assert get_shrink(768, 1024) == pytest.approx((1.0, 1.47), abs=1e-12)
    # 3000 x 4000: sqrt(2777088 / 1.2e7) = 0.4811 -> 0.48 - 0.3 = 0.18, below 1.
    assert get_shrink(3000, 4000) == pytest.approx((0.18, 0.18), abs=1e-12)
    for (h, w), expected in zip(paddle_sample["sizes"], paddle_sample["shrink"]):
        assert get_shrink(int(h), int(w)) == pytest.approx(tuple(expected), abs=1e-12)


def test_bbox_vote_by_hand():
    # Two boxes at IoU 110 / 132 = 0.83 (+1 sides) vote; the far box stands alone and, not
    # being the last box left, is dropped as Paddle drops it; the last singleton stays.
    det = np.array([[0, 0, 10, 10, 0.9], [1, 0, 11, 10, 0.3], [100, 100, 110, 110, 0.8],
                    [300, 300, 310, 310, 0.5]])
    out = bbox_vote(det)
    np.testing.assert_allclose(out, [[0.25, 0, 10.25, 10, 0.9], [300, 300, 310, 310, 0.5]])
    assert bbox_vote(np.zeros((0, 5))).shape == (0, 5)


def test_bbox_vote_as_paddle(paddle_sample):
    for case in range(4):
        ours = bbox_vote(paddle_sample[f"vote{case}/input"])
        np.testing.assert_allclose(ours, paddle_sample[f"vote{case}/output"], rtol=0,
                                   atol=1e-9)


def test_multi_scale_passes_as_paddle(paddle_sample):
    """The same stand-in detector (fixed boxes at fractions of its input) through Paddle's
    face_eval_run chain and through FaceTest: the scales, the truncated resize sizes, the
    flip, the size filters and the vote agree."""
    fractions = tf.constant(paddle_sample["fractions"], tf.float32)
    scores = tf.constant(paddle_sample["scores"], tf.float32)

    def stand_in(images):
        h, w = (tf.cast(v, tf.float32) for v in (tf.shape(images)[1], tf.shape(images)[2]))
        return {"boxes": (fractions * tf.stack([w, h, w, h]))[None], "scores": scores[None],
                "num_detections": tf.constant([len(paddle_sample["scores"])])}

    test = FaceTest(stand_in, "multi_scale")
    for i, (h, w) in enumerate(paddle_sample["sizes"]):
        ours = test(np.zeros((int(h), int(w), 3), np.float32))
        theirs = paddle_sample[f"multi_scale{i}"]
        assert ours.shape == theirs.shape, (h, w)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-3)


def test_flip_and_scales_map_back_to_the_image():
    """A detector that boxes the bright pixels it sees: every pass (shrunk, enlarged,
    flipped) maps that box back onto the face's pixels."""
    def bright_box(images):
        mask = images[0, ..., 0] > 0.5
        rows = tf.where(tf.reduce_any(mask, 1))[:, 0]
        cols = tf.where(tf.reduce_any(mask, 0))[:, 0]
        box = tf.cast(tf.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]), tf.float32)
        return {"boxes": box[None, None], "scores": tf.constant([[0.9]]),
                "num_detections": tf.constant([1])}

    image = np.zeros((120, 200, 3), np.float32)
    image[30:90, 20:60] = 1.0  # a 40 x 60 "face" left of centre: a wrong flip would miss it
    test = FaceTest(bright_box, "multi_scale")
    passes = []
    test_pass = test._pass
    test._pass = lambda *a, **k: passes.append(test_pass(*a, **k)) or passes[-1]
    out = test(image)
    assert len(passes) >= 7
    for det in passes:
        np.testing.assert_allclose(det[:, :4], [[20, 30, 60, 90]], atol=4.5)
    np.testing.assert_allclose(out[:, :4], [[20, 30, 60, 90]], atol=2.0)
    assert out[0, 4] == pytest.approx(0.9)
    original = FaceTest(bright_box, "original")(image)
    np.testing.assert_allclose(original, [[20, 30, 60, 90, 0.9]], atol=1e-6)


def test_face_predictor_runs_a_face_row_at_each_images_size():
    """BlazeFace detects at the image's own size: its boxes there equal the model's own call
    on that image (not a 640 square); a fixed-size SSD is refused."""
    from tfdet import models
    model = models.get("blazeface", image_size=128)
    image = np.random.default_rng(0).normal(0, 1, (1, 75, 131, 3)).astype(np.float32)
    predict = face_predictor(model, "original")
    out = predict(image, np.array([[75, 131]], np.float32))
    direct = model(image)
    n = int(direct["num_detections"][0])
    assert int(out["num_detections"][0]) == n > 0
    np.testing.assert_allclose(out["boxes"][0], direct["boxes"][0, :n], atol=1e-4)
    with pytest.raises(ValueError, match="at 300 only"):
        face_predictor(models.get("ssd_vgg16_300", num_classes=2))
    with pytest.raises(ValueError, match="face test must be one of"):
        FaceTest(None, "pyramid")
