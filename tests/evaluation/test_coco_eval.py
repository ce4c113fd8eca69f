"""COCO evaluation: perfect detections, a hand-computed AP, and agreement with pycocotools."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.conftest import require_shared
from tfdet import data
from tfdet.evaluation import CocoEvaluator


def add_ground_truth_as_detections(evaluator, dataset, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    for ex in dataset.examples:
        keep = ~ex.is_crowd
        boxes = ex.boxes[keep] + rng.normal(0, jitter, ex.boxes[keep].shape) * (
            ex.boxes[keep, 2:] - ex.boxes[keep, :2]).repeat(2, 1)
        scores = rng.uniform(0.5, 1.0, len(boxes)) if jitter else np.ones(len(boxes))
        evaluator.add_detections([ex.image_id], boxes[None], scores[None], ex.classes[keep][None])


def test_ground_truth_as_detections_gives_ap_one():
    root = require_shared("coco128")
    ds = data.read_coco(str(root / "annotations/instances_train2017_first128.json"),
                        str(root / "images/train2017"))
    ev = CocoEvaluator(ds)
    add_ground_truth_as_detections(ev, ds)
    m = ev.evaluate(verbose=False)
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        assert m[name] == pytest.approx(1.0), name
    # Results use COCO's own category ids (with gaps), not class indices.
    assert {r["category_id"] for r in ev.results} <= set(ds.category_ids)
    assert max(r["category_id"] for r in ev.results) > ds.num_classes


def test_hand_computed_ap():
    # One class, two objects; detections: hit (0.9), miss (0.8), hit (0.7).
    ex = data.make_example(1, "a.jpg", 100, 100, [[0, 0, 50, 50], [60, 60, 90, 90]], [0, 0])
    ds = data.DetectionDataset("hand", [ex], ["thing"], [5], data.SkipLog("hand"))
    ev = CocoEvaluator(ds)
    ev.add_detections([1], [[[0, 0, 50, 50], [0, 60, 30, 90], [60, 60, 90, 90]]],
                      [[0.9, 0.8, 0.7]], [[0, 0, 0]])
    m = ev.evaluate(verbose=False)
    # Precision envelope: 1 up to recall 0.5 (51 of 101 recall points), then 2/3 (50 points).
    expect = (51 * 1.0 + 50 * 2 / 3) / 101
    assert m["AP"] == pytest.approx(expect, abs=1e-6)
    assert m["AP50"] == pytest.approx(expect, abs=1e-6)
    assert m["AR100"] == pytest.approx(1.0)
    assert m["AR1"] == pytest.approx(0.5)
    assert CocoEvaluator(ds).evaluate(verbose=False)["AP"] == 0.0  # no detections at all


def test_matches_pycocotools_called_directly(tmp_path):
    root = require_shared("coco128")
    ann = str(root / "annotations/instances_train2017_first128.json")
    ds = data.read_coco(ann, str(root / "images/train2017"), keep_empty=True)
    ev = CocoEvaluator(ann, category_ids=ds.category_ids)
    add_ground_truth_as_detections(ev, ds, jitter=0.08, seed=1)
    # Some false positives of other classes too.
    rng = np.random.default_rng(2)
    for ex in ds.examples[:40]:
        ev.add_detections([ex.image_id], [[[10, 10, 60, 80]]], [[rng.uniform()]],
                          [[rng.integers(0, 80)]])
    res_file = str(tmp_path / "results.json")
    ev.write_results(res_file)
    ours = ev.evaluate(verbose=False)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann)
        ref = COCOeval(gt, gt.loadRes(res_file), "bbox")
        ref.evaluate(), ref.accumulate(), ref.summarize()
    np.testing.assert_allclose([ours[k] for k in ours], ref.stats, atol=1e-9)
    assert 0.2 < ours["AP"] < 0.95  # a non-trivial operating point
    assert json.load(open(res_file))[0].keys() >= {"image_id", "category_id", "bbox", "score"}


def test_segm_ap_from_masks():
    from pycocotools import mask as mask_utils

    poly = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]]
    ex = data.make_example(1, "a.jpg", 50, 60, [[10, 10, 40, 40]], [0], masks=[poly])
    ds = data.DetectionDataset("m", [ex], ["sq"], [1], data.SkipLog("m"))
    gt_mask = mask_utils.decode(mask_utils.frPyObjects(poly, 50, 60))[..., 0]
    ev = CocoEvaluator(ds)
    ev.add_detections([1], [[[10, 10, 40, 40]]], [[0.9]], [[0]], masks=[[gt_mask]])
    assert ev.evaluate("segm", verbose=False)["AP"] == pytest.approx(1.0)
    half = gt_mask.copy()
    half[:, 25:] = 0  # IoU 0.5 with the ground truth: counts only at the 0.50 threshold
    ev.reset()
    ev.add_detections([1], [[[10, 10, 40, 40]]], [[0.9]], [[0]], masks=[[half]])
    m = ev.evaluate("segm", verbose=False)
    assert m["AP50"] == pytest.approx(1.0) and m["AP75"] == pytest.approx(0.0)
