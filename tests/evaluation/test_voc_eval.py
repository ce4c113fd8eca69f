"""VOC mAP: both AP definitions by hand, difficult handling, duplicates, perfect detections."""
import numpy as np
import pytest

from tests.conftest import require_shared
from tfdet import data
from tfdet.evaluation import VocEvaluator, average_precision


def hand_dataset():
    ex = data.make_example(1, "a.jpg", 100, 100, [[0, 0, 50, 50], [60, 60, 90, 90],
                                                  [0, 60, 20, 90]], [0, 0, 0],
                           difficult=[False, False, True])
    return data.DetectionDataset("hand", [ex], ["thing", "other"], [1, 2], data.SkipLog("h"))


def test_average_precision_definitions():
    recall, precision = [0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]
    assert average_precision(recall, precision, True) == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert average_precision(recall, precision, False) == pytest.approx(0.5 + 0.5 * 2 / 3)


def devkit_voc07_ap(rec, prec):
    """py-faster-rcnn's voc_eval.voc_ap(use_07_metric=True), transcribed (the devkit's
    VOCevaldet steps t=0:0.1:1 the same way in floating point)."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
        ap = ap + p / 11.0
    return ap


def test_11_point_thresholds_step_as_the_devkit():
    # Recall exactly 0.3 (3 of 10) does not reach the devkit's 4th threshold,
    # 0.30000000000000004: that point takes the precision at recall 0.5.
    assert average_precision([0.3, 0.5], [1.0, 0.5], True) == pytest.approx(4.5 / 11, abs=1e-15)
    rng = np.random.default_rng(0)
    for _ in range(200):  # random ranked lists over 10 objects: recalls land on k / 10
        tp = (rng.uniform(size=int(rng.integers(1, 25))) < 0.5).astype(float)
        rec = np.cumsum(tp) / 10.0
        prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
        assert average_precision(rec, prec, True) == pytest.approx(devkit_voc07_ap(rec, prec),
                                                                   abs=1e-12)


@pytest.mark.parametrize("use_07", [True, False])
def test_hand_case_with_difficult_and_duplicate(use_07):
    ev = VocEvaluator(hand_dataset(), use_07_metric=use_07)
    # hit (0.95), on the difficult object (0.9: ignored), miss (0.8), duplicate of the first
    # object (0.75: false positive), hit (0.7).
    boxes = [[0, 0, 50, 50], [0, 60, 20, 90], [30, 60, 50, 80], [1, 1, 50, 50], [60, 60, 90, 90]]
    ev.add_detections([1], [boxes], [[0.95, 0.9, 0.8, 0.75, 0.7]], [[0, 0, 0, 0, 0]])
    m = ev.evaluate(verbose=False)
    # TP/FP in order: T, F, F, T -> precision 1, 1/2, 1/3, 1/2 at recall .5, .5, .5, 1.
    expect = (6 * 1.0 + 5 * 0.5) / 11 if use_07 else 0.5 * 1.0 + 0.5 * 0.5
    assert m["AP/thing"] == pytest.approx(expect)
    assert np.isnan(m["AP/other"])  # no ground truth: left out of the mean
    assert m["mAP"] == pytest.approx(expect)


def test_perfect_detections_on_raccoon_give_one():
    root = require_shared("raccoon")
    ds = data.read_voc(str(root), None, None, annotations_dir="annotations", images_dir="images")
    ev = VocEvaluator(ds)
    for ex in ds.examples:
        ev.add_detections([ex.image_id], ex.boxes[None], np.ones((1, ex.num_boxes)),
                          ex.classes[None])
    assert ev.evaluate(verbose=False)["mAP"] == pytest.approx(1.0)
