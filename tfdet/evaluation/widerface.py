"""WIDER FACE Easy / Medium / Hard AP, as the official evaluation (eval_tools/evaluation.m of
the WIDER FACE site, and its Python port) computes it.

The protocol, per setting (easy, medium, hard):
- Scores are min-max normalised over every prediction of the set.
- Ground truth: every face of an image; the setting's keep list (wider_<setting>_val.mat,
  1-based indices) says which faces count. Per image, predictions in decreasing score (the
  official code takes them in file order, which detectors write sorted): each goes to the face
  it overlaps most (IoU with the +1 pixel convention of the MATLAB `boxoverlap`); at IoU >=
  0.5 with a face that does not count it is neither a proposal nor a hit; with a counted face
  it is a proposal, and the first one recalls that face. Below 0.5 it is a proposal (a false
  positive).
- For 1000 thresholds 1 - t / 1000 (t = 1 ... 1000): proposals and recalled faces of each
  image's predictions scoring >= the threshold, summed over images; precision = recalled /
  proposals, recall = recalled / counted faces (all images, those without predictions too).
- AP: the area under the precision envelope (VOC2010+), where 0 / 0 precisions are skipped as
  MATLAB's `max` skips NaN.

Boxes here are xyxy in original pixels (a face x, y, w, h of the lists is [x, y, x + w, y + h]);
the protocol's x, y, w, h are x1, y1, x2 - x1, y2 - y1.

Ground truth either from the official .mat files (`read_wider_face_mat`: the settings' keep
lists and the boxes they index) or, without them, from the data set: one setting 'all' in which
every face counts except `difficult` ones and WIDER's `invalid` ones.
"""
import os

import numpy as np

from tfdet.evaluation.voc import average_precision

SETTINGS = ("easy", "medium", "hard")


def _overlaps(pred, gt):
    """[P, G] IoU of xyxy boxes with the +1 pixel areas of the official boxoverlap."""
    iw = (np.minimum(pred[:, None, 2], gt[None, :, 2])
          - np.maximum(pred[:, None, 0], gt[None, :, 0]) + 1)
    ih = (np.minimum(pred[:, None, 3], gt[None, :, 3])
          - np.maximum(pred[:, None, 1], gt[None, :, 1]) + 1)
    inter = iw * ih
    area_p = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    area_g = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    iou = inter / (area_p[:, None] + area_g[None, :] - inter)
    return np.where((iw > 0) & (ih > 0), iou, 0.0)


def image_pr(scores, boxes, gt_boxes, counted, thresholds, iou_threshold=0.5):
    """One image: [T, 2] (proposals, recalled faces) among its predictions scoring >= each
    threshold. scores [P] (normalised, decreasing), boxes [P, 4], gt_boxes [G, 4] (xyxy),
    counted [G] bool (the setting's keep list)."""
    out = np.zeros((len(thresholds), 2))
    if not len(scores) or not len(gt_boxes):
        return out
    iou = _overlaps(boxes, gt_boxes)
    best, hit = iou.argmax(1), iou.max(1) >= iou_threshold
    proposal = ~(hit & ~counted[best])  # a hit on a face that does not count is no proposal
    recalls = hit & counted[best]
    first = np.zeros(len(scores), bool)  # the first prediction to recall each face
    _, where = np.unique(np.where(recalls, best, -1), return_index=True)
    first[where[recalls[where]]] = True
    proposals, recalled = np.cumsum(proposal), np.cumsum(first)
    last = np.searchsorted(-scores, -thresholds, side="right") - 1  # last index >= threshold
    keep = last >= 0
    out[keep, 0] = proposals[last[keep]]
    out[keep, 1] = recalled[last[keep]]
    return out


def wider_face_ap(predictions, ground_truth, iou_threshold=0.5, thresh_num=1000):
    """predictions: {key: (scores [P], boxes [P, 4] xyxy)}; ground_truth: {key: (gt_boxes
    [G, 4] xyxy, {setting: counted [G] bool})}. Images of ground_truth without predictions
    count their faces. Returns {setting: AP}."""
    everything = [s for s, _ in predictions.values() if len(s)]
    low = min(float(s.min()) for s in everything) if everything else 0.0
    high = max(float(s.max()) for s in everything) if everything else 1.0
    span = high - low if high > low else 1.0
    thresholds = 1 - (np.arange(thresh_num) + 1) / thresh_num
    settings = sorted({s for _, c in ground_truth.values() for s in c},
                      key=lambda s: (SETTINGS + (s,)).index(s))
    curves = {s: np.zeros((thresh_num, 2)) for s in settings}
    faces = dict.fromkeys(settings, 0)
    for key, (gt_boxes, counted) in ground_truth.items():
        scores, boxes = predictions.get(key, (np.zeros(0), np.zeros((0, 4))))
        order = np.argsort(-np.asarray(scores, float), kind="stable")
        scores = (np.asarray(scores, float)[order] - low) / span
        boxes = np.asarray(boxes, float).reshape(-1, 4)[order]
        gt_boxes = np.asarray(gt_boxes, float).reshape(-1, 4)
        for s in settings:
            faces[s] += int(counted[s].sum())
            curves[s] += image_pr(scores, boxes, gt_boxes, counted[s], thresholds,
                                  iou_threshold)
    aps = {}
    for s in settings:
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = curves[s][:, 1] / curves[s][:, 0]
        recall = curves[s][:, 1] / max(faces[s], 1)
        # The VOC2010+ area; a 0 / 0 precision as 0 is MATLAB's NaN-skipping max (the
        # envelope takes the larger precision to its right, and the end sentinel is 0).
        aps[s] = average_precision(recall, np.nan_to_num(precision, nan=0.0), False)
    return aps


def read_wider_face_mat(ground_truth_dir, split="val"):
    """The official ground truth (eval_tools/ground_truth): wider_face_<split>.mat (events,
    files, boxes x, y, w, h) and wider_{easy,medium,hard}_<split>.mat (keep lists) ->
    {"<event>/<file>": (gt_boxes [G, 4] xyxy, {setting: counted [G] bool})}. Needs scipy."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("reading WIDER FACE's .mat ground truth needs scipy "
                          "(pip install scipy)") from None

    def load(name):
        path = os.path.join(ground_truth_dir, name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"WIDER FACE ground truth {path} not found (the official "
                                    f"eval_tools/ground_truth folder)")
        return path, loadmat(path)

    path, main = load(f"wider_face_{split}.mat")
    for field in ("event_list", "file_list", "face_bbx_list"):
        if field not in main:
            raise ValueError(f"{path}: no {field!r} (not WIDER FACE's ground truth)")
    keeps = {s: load(f"wider_{s}_{split}.mat")[1]["gt_list"] for s in SETTINGS}
    out = {}
    for e, event in enumerate(main["event_list"][:, 0]):
        event = str(np.asarray(event).reshape(-1)[0])
        files = main["file_list"][e, 0][:, 0]
        boxes = main["face_bbx_list"][e, 0][:, 0]
        for j, name in enumerate(files):
            name = str(np.asarray(name).reshape(-1)[0])
            xywh = np.asarray(boxes[j], float).reshape(-1, 4)
            gt = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
            counted = {}
            for s in SETTINGS:
                index = np.asarray(keeps[s][e, 0][j, 0], int).reshape(-1)
                flags = np.zeros(len(gt), bool)
                flags[index - 1] = True
                counted[s] = flags
            out[f"{event}/{name}"] = (gt, counted)
    return out


def image_key(path):
    """'<event>/<file without extension>' of a WIDER FACE image path."""
    folder, name = os.path.split(os.path.normpath(path))
    return f"{os.path.basename(folder)}/{os.path.splitext(name)[0]}"


class WiderFaceEvaluator:
    """Accumulates face detections over a DetectionDataset and scores them with the WIDER FACE
    protocol: metrics AP_easy, AP_medium, AP_hard with `ground_truth_dir` (the official .mat
    files, matched to the data set's images by '<event>/<file>'), else AP_all over the data
    set's own faces. `metrics['AP']` is the hardest setting scored (Hard, or all)."""

    def __init__(self, dataset, ground_truth_dir=None, iou_threshold=0.5, thresh_num=1000):
        self.iou_threshold, self.thresh_num = iou_threshold, thresh_num
        self.keys = {ex.image_id: image_key(ex.path) for ex in dataset.examples}
        if ground_truth_dir:
            official = read_wider_face_mat(ground_truth_dir)
            missing = [k for k in self.keys.values() if k not in official]
            if missing:
                raise ValueError(f"{len(missing)} images of {dataset.name} are not in the "
                                 f"ground truth of {ground_truth_dir} (first: {missing[0]})")
            self.gt = {k: official[k] for k in self.keys.values()}
        else:
            self.gt = {}
            for ex in dataset.examples:
                counted = ~ex.difficult
                if ex.attributes and "invalid" in ex.attributes:
                    counted &= ex.attributes["invalid"] == 0
                self.gt[self.keys[ex.image_id]] = (ex.boxes, {"all": counted})
        self.reset()

    def reset(self):
        self._dets = {}  # image_id -> (boxes, classes, scores)

    def add_detections(self, image_ids, boxes, scores, classes, num_detections=None):
        """Same layout as CocoEvaluator.add_detections (xyxy original pixels)."""
        image_ids = np.asarray(image_ids).reshape(-1)
        boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
        for b, image_id in enumerate(image_ids):
            n = boxes.shape[1] if num_detections is None else int(np.asarray(num_detections)[b])
            self._dets[int(image_id)] = (boxes[b, :n].astype(float), classes[b, :n],
                                         scores[b, :n].astype(float))

    def per_image(self):
        """{image_id: (boxes [N, 4], classes [N], scores [N])} of the detections so far."""
        return dict(self._dets)

    def evaluate(self, verbose=True):
        predictions = {self.keys[i]: (s, b) for i, (b, _, s) in self._dets.items()}
        aps = wider_face_ap(predictions, self.gt, self.iou_threshold, self.thresh_num)
        metrics = {f"AP_{s}": v for s, v in aps.items()}
        metrics["AP"] = aps["hard"] if "hard" in aps else aps["all"]
        if verbose:
            print("WIDER FACE AP@0.5: " + " / ".join(f"{s} {v:.4f}" for s, v in aps.items()))
        return metrics
