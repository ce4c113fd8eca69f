"""Multi-scale + flip test-time augmentation: the merge against a numpy transcription of
Paddle's multi-scale post-processing (per-class NMS, box voting, the best over classes), the
geometry of every pass (resize, flip, back to the image's pixels), the evaluation path and
the serving_tta signature."""
import numpy as np
import pytest
import tensorflow as tf

from tests.ops.test_nms import np_iou as _np_iou
from tfdet import data, models
from tfdet.tta import TestTimeAugmentation, merge_with_voting


def _np_merge(boxes, scores, classes, nms_iou, vote_iou, thresh, keep):
    """Paddle's get_nms_result (static ppdet/utils/post_process.py) without its +1 pixel
    convention: per class, candidates scoring > thresh, greedy NMS, box voting over the
    class's candidates; then the `keep` best over all classes."""
    results = []
    for c in np.unique(classes):
        idx = np.flatnonzero((classes == c) & (scores > thresh))
        order = list(idx[np.argsort(-scores[idx], kind="stable")])
        kept = []
        while order:
            i = order.pop(0)
            kept.append(i)
            order = [j for j in order if _np_iou(boxes[i], boxes[j]) < nms_iou]
        for i in kept:
            votes = [j for j in idx if _np_iou(boxes[i], boxes[j]) >= vote_iou]
            w = scores[votes]
            results.append((scores[i], c, (boxes[votes] * w[:, None]).sum(0) / w.sum()))
    results.sort(key=lambda r: -r[0])
    return results[:keep]


def test_merge_is_per_class_nms_with_box_voting():
    rng = np.random.default_rng(0)
    centres = rng.uniform(40, 160, (6, 2))
    n = 120
    c = centres[rng.integers(0, 6, n)] + rng.normal(0, 2, (n, 2))
    wh = rng.uniform(30, 50, (n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    classes = rng.integers(0, 3, n).astype(np.int32)
    out = merge_with_voting(boxes, scores, classes, 0.5, 0.9, 0.05, 10)
    expected = _np_merge(boxes, scores, classes, 0.5, 0.9, 0.05, 10)
    num = int(out["num_detections"][0])
    assert num == len(expected) == 10
    np.testing.assert_allclose(out["scores"][0, :num], [e[0] for e in expected], rtol=1e-6)
    assert out["classes"][0, :num].numpy().tolist() == [e[1] for e in expected]
    np.testing.assert_allclose(out["boxes"][0, :num], [e[2] for e in expected], atol=1e-3)
    # Voting moved some boxes (else the test would not see it).
    assert any(np.abs(np.asarray(e[2]) - boxes[np.argmin(np.abs(scores - e[0]))]).max() > 0.1
               for e in expected)


class BrightBox:
    """A fake detector: one detection, the bounding box of the pixels above 0.5 in its input
    (within image_sizes), class 1, score 0.9."""

    def call(self, images, training=False, image_sizes=None):
        raise NotImplementedError

    def __call__(self, images, training=False, image_sizes=None):
        h = tf.cast(image_sizes[0, 0], tf.int32)
        w = tf.cast(image_sizes[0, 1], tf.int32)
        bright = images[0, :h, :w, 0] > 0.5
        rows = tf.where(tf.reduce_any(bright, 1))[:, 0]
        cols = tf.where(tf.reduce_any(bright, 0))[:, 0]
        box = tf.cast(tf.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]), tf.float32)
        pad = tf.zeros([4, 4])
        return {"boxes": tf.concat([box[None], pad], 0)[None],
                "scores": tf.constant([[0.9, 0, 0, 0, 0]]),
                "classes": tf.constant([[1, 0, 0, 0, 0]]),
                "num_detections": tf.constant([1])}


def test_every_pass_maps_back_to_the_image_and_the_passes_merge_into_one_box():
    image = np.zeros((120, 200, 3), np.float32)
    image[30:70, 20:80] = 1.0  # an off-centre box: a wrong flip would mirror it
    tta = TestTimeAugmentation(BrightBox(), scales=(60, 120, 240), max_long_side=300,
                               size_divisor=32)
    passes = [tta._pass(tf.constant(image), 120, 200, s, f) for s in tta.scales
              for f in (False, True)]
    for boxes, scores, _ in passes:
        np.testing.assert_allclose(boxes[0].numpy(), [20, 30, 80, 70], atol=2.5)
        assert float(scores[0]) == pytest.approx(0.9) and not scores[1:].numpy().any()
    out = tta(image)
    assert int(out["num_detections"][0]) == 1 and int(out["classes"][0, 0]) == 1
    np.testing.assert_allclose(out["boxes"][0, 0].numpy(), [20, 30, 80, 70], atol=1.5)


@pytest.fixture(scope="module")
def small_retinanet():
    import keras
    keras.utils.set_random_seed(2)
    model = models.get("retinanet_r50_fpn", num_classes=3, depth=18, norm="bn",
                       fpn_channels=32)
    bias = next(v for v in model.weights if "class_out" in v.path and v.name == "bias")
    bias.assign(tf.zeros_like(bias))  # an untrained model with detections to compare
    return model


def test_tta_evaluation_and_serving_tta_agree(small_retinanet, tmp_path):
    from tfdet.config import load_experiment
    from tfdet.evaluation import evaluate_detector, tta_predictor
    from tfdet.export import export_saved_model

    sample = data.load_sample_dataset("val")
    subset = data.DetectionDataset(sample.name, sample.examples[:2], sample.class_names,
                                   sample.category_ids, sample.skipped)
    exp = load_experiment(None, ["ModelConfig.name = 'retinanet_r50_fpn_1x'",
                                 "DataConfig.size_divisor = 128"])
    tta = exp.tta(small_retinanet, scales=[96, 160])
    assert (tta.scales, tta.flips, tta.size_divisor) == ((96, 160), (False, True), 128)
    metrics, _ = evaluate_detector(tta_predictor(tta), exp.tta_pipeline(subset),
                                           subset, verbose=False, progress=False)
    assert 0 <= metrics["AP"] <= 1
    path = str(tmp_path / "model" / "1")
    export_saved_model(small_retinanet, path, sample.category_ids, sample.class_names,
                       transform=exp.eval_transform(), canvas=exp.serving_canvas(),
                       size_divisor=128, tta=tta)
    loaded = tf.saved_model.load(path)
    assert "serving_tta" in loaded.signatures
    example = subset.examples[0]
    image = tf.io.decode_image(tf.io.read_file(example.path), channels=3,
                               expand_animations=False)
    served = loaded.signatures["serving_tta"](images=image[None])
    normalised = (tf.cast(image, tf.float32) - data.IMAGENET_MEAN) / data.IMAGENET_STD
    ours = tta(normalised)
    n = int(ours["num_detections"][0])
    assert n > 0 and int(served["num_detections"][0]) == n
    h, w = example.height, example.width
    x1, y1, x2, y2 = np.moveaxis(ours["boxes"][0, :n].numpy(), -1, 0)
    np.testing.assert_allclose(served["detection_boxes"][0, :n],
                               np.clip(np.stack([y1 / h, x1 / w, y2 / h, x2 / w], -1), 0, 1),
                               atol=1e-4)
    np.testing.assert_allclose(served["detection_scores"][0, :n], ours["scores"][0, :n],
                               atol=1e-5)
    classes = np.asarray(sample.category_ids)[ours["classes"][0, :n].numpy()]
    np.testing.assert_array_equal(served["detection_classes"][0, :n], classes)
