"""WIDER FACE evaluation against a transcription of the official Python evaluation
(WiderFace-Evaluation's evaluation.py, itself a port of eval_tools/evaluation.m: loops,
+1 pixel overlaps, MATLAB's NaN-skipping max), and a case computed by hand."""
import numpy as np
import pytest

from tfdet.data import DetectionDataset, SkipLog, make_example
from tfdet.evaluation import evaluate_detector, headline
from tfdet.evaluation.widerface import (WiderFaceEvaluator, read_wider_face_mat,
                                        wider_face_ap)


# ---- the official evaluation, transcribed (x, y, w, h boxes; scores in the 5th column) ----
def _official_overlaps(boxes, query):
    out = np.zeros((len(boxes), len(query)))
    for k, q in enumerate(query):
        q_area = (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
        for n, b in enumerate(boxes):
            iw = min(b[2], q[2]) - max(b[0], q[0]) + 1
            if iw > 0:
                ih = min(b[3], q[3]) - max(b[1], q[1]) + 1
                if ih > 0:
                    ua = (b[2] - b[0] + 1) * (b[3] - b[1] + 1) + q_area - iw * ih
                    out[n, k] = iw * ih / ua
    return out


def _official_image_eval(pred, gt, ignore, iou_thresh):
    pred, gt = pred.copy(), gt.copy()
    pred_recall, recall_list = np.zeros(len(pred)), np.zeros(len(gt))
    proposal_list = np.ones(len(pred))
    pred[:, 2] += pred[:, 0]
    pred[:, 3] += pred[:, 1]
    gt[:, 2] += gt[:, 0]
    gt[:, 3] += gt[:, 1]
    overlaps = _official_overlaps(pred[:, :4], gt)
    for h in range(len(pred)):
        max_overlap, max_idx = overlaps[h].max(), overlaps[h].argmax()
        if max_overlap >= iou_thresh:
            if ignore[max_idx] == 0:
                recall_list[max_idx] = -1
                proposal_list[h] = -1
            elif recall_list[max_idx] == 0:
                recall_list[max_idx] = 1
        pred_recall[h] = len(np.where(recall_list == 1)[0])
    return pred_recall, proposal_list


def _official_img_pr_info(thresh_num, pred_info, proposal_list, pred_recall):
    pr_info = np.zeros((thresh_num, 2))
    for t in range(thresh_num):
        thresh = 1 - (t + 1) / thresh_num
        r_index = np.where(pred_info[:, 4] >= thresh)[0]
        if len(r_index):
            r_index = r_index[-1]
            pr_info[t, 0] = len(np.where(proposal_list[:r_index + 1] == 1)[0])
            pr_info[t, 1] = pred_recall[r_index]
    return pr_info


def _official_voc_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = mpre[i] if np.isnan(mpre[i - 1]) else max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _official_evaluation(preds, gts, keeps, iou_thresh=0.5, thresh_num=1000):
    """preds {key: [P, 5] x y w h score, sorted}; gts {key: [G, 4] x y w h}; keeps {setting:
    {key: 1-based kept indices}}."""
    scores = np.concatenate([p[:, 4] for p in preds.values() if len(p)])
    low, high = scores.min(), scores.max()
    preds = {k: np.concatenate([p[:, :4], (p[:, 4:] - low) / (high - low)], 1)
             for k, p in preds.items()}
    aps = {}
    for setting, keep in keeps.items():
        count_face, pr_curve = 0, np.zeros((thresh_num, 2))
        for key, gt_boxes in gts.items():
            pred_info, keep_index = preds.get(key, np.zeros((0, 5))), keep[key]
            count_face += len(keep_index)
            if len(gt_boxes) == 0 or len(pred_info) == 0:
                continue
            ignore = np.zeros(len(gt_boxes))
            if len(keep_index):
                ignore[np.asarray(keep_index) - 1] = 1
            pred_recall, proposal_list = _official_image_eval(pred_info, gt_boxes, ignore,
                                                              iou_thresh)
            pr_curve += _official_img_pr_info(thresh_num, pred_info, proposal_list, pred_recall)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = pr_curve[:, 1] / pr_curve[:, 0]
        aps[setting] = _official_voc_ap(pr_curve[:, 1] / count_face, precision)
    return aps


def _xyxy(xywh):
    xywh = np.asarray(xywh, float).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)


def test_hand_computed_case():
    """Faces A, B, C (10 px squares); A and B count in 'x', all three in 'y'. Predictions:
    0.9 on A, 0.8 on C, 0.7 on nothing, 0.6 on B (normalised 1, 2/3, 1/3, 0).
    'x': (precision, recall) 1 / 0.5 above 2/3; p on C is no proposal, so 1 / 0.5 down to 1/3;
    then 0.5 / 0.5; at 0 all four: 2/3 / 1. AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
    'y': 1 / 1/3, 1 / 2/3, 2/3 / 2/3, 3/4 / 1: AP = 1/3 + 1/3 + 1/3 * 3/4 = 11/12."""
    gt = _xyxy([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]])
    counted = {"x": np.array([True, True, False]), "y": np.ones(3, bool)}
    boxes = np.stack([gt[0], gt[2], [100, 100, 110, 110], gt[1]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    aps = wider_face_ap({"e/a": (scores, boxes)}, {"e/a": (gt, counted)})
    assert aps == pytest.approx({"x": 5 / 6, "y": 11 / 12}, abs=1e-12)
    # The order the predictions come in does not matter (they are sorted by score).
    shuffled = [3, 1, 0, 2]
    assert wider_face_ap({"e/a": (scores[shuffled], boxes[shuffled])},
                         {"e/a": (gt, counted)}) == aps


def test_matches_the_official_evaluation_on_random_images():
    rng = np.random.default_rng(0)
    preds, gts, keeps = {}, {}, {s: {} for s in ("easy", "medium", "hard")}
    for i in range(12):
        key = f"{i % 3}--Event/{i}"
        n = int(rng.integers(0, 9))
        xy = rng.integers(0, 300, (n, 2))
        wh = rng.integers(4, 80, (n, 2))
        gts[key] = np.concatenate([xy, wh], 1).astype(float)
        hard = np.flatnonzero(rng.random(n) < 0.8) + 1
        medium = hard[rng.random(len(hard)) < 0.7]
        keeps["hard"][key], keeps["medium"][key] = hard, medium
        keeps["easy"][key] = medium[rng.random(len(medium)) < 0.6]
        if i == 5:
            continue  # an image without predictions: its faces are misses
        # Jittered copies of some faces (duplicates too) and background boxes.
        src = gts[key][rng.integers(0, n, int(rng.integers(0, 2 * n + 1)))] if n else \
            np.zeros((0, 4))
        jitter = src + rng.normal(0, 2.5, src.shape) * [1, 1, 1, 1]
        noise = np.concatenate([rng.integers(0, 300, (3, 2)), rng.integers(4, 60, (3, 2))], 1)
        p = np.concatenate([jitter, noise])
        s = rng.random(len(p))
        order = np.argsort(-s, kind="stable")
        preds[key] = np.concatenate([p, s[:, None]], 1)[order]
    expected = _official_evaluation(preds, gts, keeps)
    ours = wider_face_ap(
        {k: (p[:, 4], _xyxy(p[:, :4])) for k, p in preds.items()},
        {k: (_xyxy(g), {s: np.isin(np.arange(len(g)) + 1, keeps[s][k]) for s in keeps})
         for k, g in gts.items()})
    assert set(ours) == set(expected)
    for s in expected:
        assert ours[s] == pytest.approx(expected[s], abs=1e-12), s
    assert 0.05 < expected["hard"] < 0.95  # a case that is neither empty nor perfect


def _write_official_mat(folder, events):
    """The eval_tools/ground_truth layout: cell arrays of events, files, x y w h boxes, and one
    keep-list file per setting. events: [(event, [(file, boxes, {setting: kept})])]."""
    from scipy.io import savemat

    def cells(items):
        out = np.empty((len(items), 1), object)
        for i, item in enumerate(items):
            out[i, 0] = item
        return out
    savemat(folder / "wider_face_val.mat", {
        "event_list": cells([e for e, _ in events]),
        "file_list": cells([cells([f for f, _, _ in files]) for _, files in events]),
        "face_bbx_list": cells([cells([np.asarray(b, float).reshape(-1, 4)
                                       for _, b, _ in files]) for _, files in events])})
    for s in ("easy", "medium", "hard"):
        savemat(folder / f"wider_{s}_val.mat", {"gt_list": cells([
            cells([np.asarray(k[s], float).reshape(-1, 1) for _, _, k in files])
            for _, files in events])})


def test_official_mat_ground_truth_and_the_evaluator(tmp_path):
    pytest.importorskip("scipy")
    faces = [[10, 10, 20, 20], [50, 10, 20, 20], [90, 10, 6, 6]]
    events = [("0--Parade", [("0_Parade_1", faces, {"easy": [1], "medium": [1, 2],
                                                   "hard": [1, 2, 3]})]),
              ("1--Handshaking", [("1_Handshaking_7", [[5, 5, 40, 40]],
                                   {"easy": [1], "medium": [1], "hard": [1]})])]
    _write_official_mat(tmp_path, events)
    gt = read_wider_face_mat(str(tmp_path))
    assert sorted(gt) == ["0--Parade/0_Parade_1", "1--Handshaking/1_Handshaking_7"]
    boxes, counted = gt["0--Parade/0_Parade_1"]
    np.testing.assert_array_equal(boxes, _xyxy(faces))
    assert counted["easy"].tolist() == [True, False, False]
    assert counted["hard"].tolist() == [True, True, True]

    # The evaluator finds the images by <event>/<file> in the data set's paths.
    examples = [make_example(1, "/d/WIDER_val/images/0--Parade/0_Parade_1.jpg", 200, 200,
                             _xyxy(faces), [0, 0, 0]),
                make_example(2, "/d/WIDER_val/images/1--Handshaking/1_Handshaking_7.jpg", 100,
                             100, _xyxy([[5, 5, 40, 40]]), [0])]
    dataset = DetectionDataset("widerface:val", examples, ["face"], [1], SkipLog("t"))
    evaluator = WiderFaceEvaluator(dataset, str(tmp_path))
    # Image 1: faces 1 and 2 found (0.9, 0.8), face 3 missed, one false positive (0.85).
    evaluator.add_detections([1], [[_xyxy(faces)[0], [150, 150, 170, 170], _xyxy(faces)[1]]],
                             [[0.9, 0.85, 0.8]], [[0, 0, 0]], [3])
    metrics = evaluator.evaluate(verbose=False)
    expected = _official_evaluation(
        {"0--Parade/0_Parade_1": np.array([[10, 10, 20, 20, 0.9], [150, 150, 20, 20, 0.85],
                                           [50, 10, 20, 20, 0.8]])},
        {k: np.asarray(b, float) for k, b in [("0--Parade/0_Parade_1", faces),
                                               ("1--Handshaking/1_Handshaking_7",
                                                [[5, 5, 40, 40]])]},
        {s: {"0--Parade/0_Parade_1": events[0][1][0][2][s],
             "1--Handshaking/1_Handshaking_7": [1]} for s in ("easy", "medium", "hard")})
    assert metrics["AP_easy"] == pytest.approx(expected["easy"])
    assert metrics["AP_hard"] == pytest.approx(expected["hard"]) and metrics["AP"] == \
        metrics["AP_hard"]
    # By hand, Easy: 2 counted faces (image 2's unpredicted); 0.9 recalls one, the 0.8 box is
    # on a face Easy does not count: recall 1/2 at precision 1 (then 1/2 with the FP) -> 0.5.
    assert metrics["AP_easy"] == pytest.approx(0.5)
    assert headline(metrics) == {k: metrics[k] for k in ("AP_easy", "AP_medium", "AP_hard")}

    other = DetectionDataset("x", [make_example(3, "/d/9--Press/9_Press_1.jpg", 10, 10,
                                                np.zeros((0, 4)), [])], ["face"], [1],
                             SkipLog("t"))
    with pytest.raises(ValueError, match="9--Press/9_Press_1"):
        WiderFaceEvaluator(other, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="wider_face_val.mat"):
        WiderFaceEvaluator(dataset, str(tmp_path / "nowhere"))


def test_without_mat_files_every_face_but_difficult_and_invalid_counts():
    boxes = _xyxy([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]])
    ex = make_example(1, "/x/e/a.jpg", 64, 64, boxes, [0, 0, 0],
                      difficult=[False, True, False],
                      attributes={"invalid": [0, 0, 1], "blur": [0, 1, 2]})
    dataset = DetectionDataset("faces", [ex], ["face"], [1], SkipLog("t"))
    evaluator = WiderFaceEvaluator(dataset)
    evaluator.add_detections([1], [boxes], [[0.9, 0.8, 0.7]], [[0, 0, 0]], [3])
    # One counted face, recalled first; the other two predictions hit uncounted faces.
    assert evaluator.evaluate(verbose=False) == {"AP_all": 1.0, "AP": 1.0}
    with pytest.raises(ValueError, match="widerface"):
        evaluate_detector(None, [], dataset, metric="voc:somewhere")
