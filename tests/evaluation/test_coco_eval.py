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
from tfdet.evaluation import METRIC_NAMES, CocoEvaluator

ROOT = __import__('pathlib').Path(__file__).resolve().parents[2]


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
    np.testing.assert_allclose([ours[k] for k in METRIC_NAMES], ref.stats, atol=1e-9)
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


def pycocotools_stats(ann_file, res_file, iou_type):
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        gt = COCO(ann_file)
        ref = COCOeval(gt, gt.loadRes(res_file), iou_type)
        ref.evaluate(), ref.accumulate(), ref.summarize()
    return list(ref.stats), printed.getvalue()


def coco128_detections(ds, coco):
    """Per image: jittered copies of the non-crowd ground truth (boxes and their real masks,
    shifted), some dropped, plus false positives; seeded."""
    rng = np.random.default_rng(3)
    for ex in ds.examples:
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[ex.image_id]))
                if not a["iscrowd"] and rng.uniform() < 0.85]
        boxes, classes, masks = [], [], []
        for a in anns:
            x, y, w, h = a["bbox"]
            jitter = rng.normal(0, 0.06, 4) * [w, h, w, h]
            boxes.append([x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3]])
            classes.append(ds.category_ids.index(a["category_id"]))
            shift = rng.integers(-3, 4, 2)
            masks.append(np.roll(coco.annToMask(a), tuple(shift), (0, 1)))
        for _ in range(int(rng.integers(0, 3))):  # false positives
            x, y = rng.uniform(0, ex.width - 40), rng.uniform(0, ex.height - 40)
            boxes.append([x, y, x + 40, y + 30])
            classes.append(int(rng.integers(0, 80)))
            m = np.zeros((ex.height, ex.width), np.uint8)
            m[int(y):int(y) + 30, int(x):int(x) + 40] = 1
            masks.append(m)
        n = len(boxes)
        yield (ex.image_id, np.asarray(boxes, np.float32).reshape(1, n, 4),
               rng.uniform(0.05, 1.0, (1, n)), np.asarray(classes).reshape(1, n), [masks])


@pytest.fixture(scope="module")
def coco128_evaluator():
    root = require_shared("coco128")
    ann = str(root / "annotations/instances_train2017_first128.json")
    ds = data.read_coco(ann, str(root / "images/train2017"), keep_empty=True)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann)
    # Real COCO annotations: crowd regions (RLE), polygons, areas that are not box areas.
    assert sum(a["iscrowd"] for a in coco.dataset["annotations"]) == 10
    ev = CocoEvaluator(ds)  # the data set's ground truth: the runner's and eval.py's path
    for image_id, boxes, scores, classes, masks in coco128_detections(ds, coco):
        ev.add_detections([image_id], boxes, scores, classes, masks=masks)
    return ann, ev


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_data_set_evaluation_equals_pycocotools_on_the_files(coco128_evaluator, tmp_path,
                                                             iou_type):
    ann, ev = coco128_evaluator
    ours = ev.evaluate(iou_type, verbose=False)
    res_file = str(tmp_path / f"{iou_type}.json")
    ev.write_results(res_file, iou_type)
    ref, _ = pycocotools_stats(ann, res_file, iou_type)
    assert 0.2 < ours["AP"] < 0.9 and ours["APs"] >= 0  # a real operating point
    np.testing.assert_allclose([ours[k] for k in METRIC_NAMES], ref, rtol=0, atol=1e-12)
    assert ours["images"] == 128 and "missing_images" not in ours


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_score_results_command_prints_what_pycocotools_prints(coco128_evaluator, tmp_path,
                                                              iou_type):
    import subprocess
    import sys

    ann, ev = coco128_evaluator
    res_file = str(tmp_path / "results.json")
    ev.write_results(res_file)  # boxes and masks together, as detectron2 writes them
    out_json = tmp_path / "out.json"
    run = subprocess.run([sys.executable, "scripts/eval.py", "--score_results", res_file,
                          "--data", f"coco:{ann}", "--iou_type", iou_type,
                          "--json", str(out_json)], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    ref, printed = pycocotools_stats(ann, res_file, iou_type)
    stats = json.loads(out_json.read_text())["stats"]
    np.testing.assert_allclose(stats, ref, rtol=0, atol=1e-12)
    summary = [line for line in printed.splitlines() if "Average" in line]
    assert len(summary) == 12 and all(line in run.stdout for line in summary)


def test_score_results_refuses_bad_files_clearly(coco128_evaluator, tmp_path):
    import subprocess
    import sys

    ann, _ = coco128_evaluator
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 0.5,
                                "bbox": [0, 0, 5, 5]}]))
    run = subprocess.run([sys.executable, "scripts/eval.py", "--score_results", str(bad),
                          "--data", f"coco:{ann}"], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=300)
    assert run.returncode != 0
    assert "image_id 1 is not in the ground truth" in run.stderr and str(bad) in run.stderr


def test_images_without_detections_are_reported():
    ex = [data.make_example(i, f"{i}.jpg", 100, 100, [[0, 0, 50, 50]], [0]) for i in range(5)]
    ds = data.DetectionDataset("five", ex, ["thing"], [1], data.SkipLog("five"))
    ev = CocoEvaluator(ds)
    for e in ex[:4]:  # a perfect predictor; one image never reached it
        ev.add_detections([e.image_id], e.boxes[None], [[1.0]], [[0]])
    m = ev.evaluate(verbose=False)
    assert m["missing_images"] == 1 and m["images"] == 4
    assert m["AP"] == pytest.approx(0.8, abs=0.01)  # the missing image's object is a miss


def test_per_class_ap_is_hand_computed_and_averages_to_ap(capsys):
    # Class "a": the hand-computed case above (hit 0.9, miss 0.8, hit 0.7); class "b": one
    # object found exactly; class "c": one object, its only detection a miss.
    ex = data.make_example(1, "a.jpg", 100, 100, [[0, 0, 50, 50], [60, 60, 90, 90],
                                                  [0, 60, 20, 95], [70, 0, 95, 20]], [0, 0, 1, 2])
    ds = data.DetectionDataset("hand", [ex], ["a", "b", "c"], [3, 5, 9], data.SkipLog("hand"))
    ev = CocoEvaluator(ds)
    ev.add_detections([1], [[[0, 0, 50, 50], [0, 60, 30, 90], [60, 60, 90, 90],
                             [0, 60, 20, 95], [40, 40, 60, 60]]],
                      [[0.9, 0.8, 0.7, 0.95, 0.6]], [[0, 0, 0, 1, 2]])
    m = ev.evaluate(verbose=True)
    a = (51 * 1.0 + 50 * 2 / 3) / 101
    assert m["per_class"]["a"] == pytest.approx({"AP": a, "AP50": a}, abs=1e-6)
    assert m["per_class"]["b"] == pytest.approx({"AP": 1.0, "AP50": 1.0})
    assert m["per_class"]["c"] == pytest.approx({"AP": 0.0, "AP50": 0.0})
    assert m["AP"] == pytest.approx((a + 1.0) / 3, abs=1e-6)  # pycocotools: mean over classes
    printed = capsys.readouterr().out
    assert "| b | 1.0000 | 1.0000 |" in printed and "| c | 0.0000 | 0.0000 |" in printed
    empty = CocoEvaluator(ds).evaluate(verbose=False)
    assert empty["per_class"]["b"] == {"AP": 0.0, "AP50": 0.0}
