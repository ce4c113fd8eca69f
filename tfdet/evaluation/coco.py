"""COCO box (and mask) AP through pycocotools: the 12 standard numbers.

Detections arrive in the library's conventions (xyxy pixels of the original image, contiguous
class ids) and are written as a COCO results list in the data set's own category ids.
"""
import contextlib
import copy
import io
import json
import logging

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

logger = logging.getLogger("tfdet.evaluation")

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_DESCRIPTIONS = ("IoU=0.50:0.95 all", "IoU=0.50 all", "IoU=0.75 all", "IoU=0.50:0.95 small",
                 "IoU=0.50:0.95 medium", "IoU=0.50:0.95 large", "maxDets=1", "maxDets=10",
                 "maxDets=100", "maxDets=100 small", "maxDets=100 medium", "maxDets=100 large")


def coco_from_dict(gt):
    """A pycocotools COCO object from a ground-truth dict, without printing."""
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def format_table(metrics, iou_type="bbox"):
    """The 12 numbers as a small markdown table."""
    lines = [f"| {iou_type} metric | setting | value |", "| --- | --- | --- |"]
    for name, desc in zip(METRIC_NAMES, _DESCRIPTIONS):
        lines.append(f"| {name} | {desc} | {metrics[name]:.4f} |")
    return "\n".join(lines)


def score_coco(ground_truth, results, iou_type="bbox", verbose=False):
    """pycocotools' 12 numbers for a ground-truth dict and a results list, exactly as
    `COCOeval(gt, gt.loadRes(results), iou_type)` computes them (the one scoring path of
    training, checkpoint, SavedModel and results-file evaluation).

    Returns (the 12 stats as floats, pycocotools' printed summary)."""
    ev, printed = _cocoeval(ground_truth, results, iou_type)
    if verbose:
        print(printed, end="")
    return [float(v) for v in ev.stats], printed


def _cocoeval(ground_truth, results, iou_type):
    """(the evaluated, accumulated and summarised COCOeval, its printed summary)."""
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    gt = coco_from_dict(ground_truth)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        dt = gt.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev, printed.getvalue()


def per_class_ap(ev):
    """{category name: {"AP": IoU .50:.95, "AP50": IoU .50}} from an accumulated COCOeval, all
    areas, 100 detections (mmdetection's classwise table): the mean over the recall points
    where precision is defined, -1 for a category without ground truth. AP is the mean of the
    defined per-category values."""
    precision = ev.eval["precision"]  # [IoU thresholds, recall points, categories, areas, dets]
    names = {c["id"]: c["name"] for c in ev.cocoGt.dataset["categories"]}
    out = {}
    for k, cat_id in enumerate(ev.params.catIds):
        values = {}
        for key, p in (("AP", precision[:, :, k, 0, -1]), ("AP50", precision[0, :, k, 0, -1])):
            p = p[p > -1]
            values[key] = float(np.mean(p)) if p.size else -1.0
        out[names.get(cat_id, str(cat_id))] = values
    return out


def format_per_class(per_class, iou_type="bbox"):
    """The per-category AP / AP50 as a small markdown table."""
    lines = [f"| {iou_type} category | AP | AP50 |", "| --- | --- | --- |"]
    lines += [f"| {name} | {v['AP']:.4f} | {v['AP50']:.4f} |" for name, v in per_class.items()]
    return "\n".join(lines)


def results_for(results, iou_type):
    """A results list as pycocotools should score it for iou_type: segm results without their
    `bbox`, since `loadRes` takes the area of a result from its box when it has one (mask
    results would then be judged small / medium / large by their box; detectron2 drops the
    box the same way)."""
    if iou_type == "segm":
        return [{k: v for k, v in r.items() if k != "bbox"} for r in results
                if "segmentation" in r]
    return list(results)


class ResultsError(ValueError):
    """A malformed COCO results file; the message names the file and the problem."""


def load_results(path, ground_truth, iou_type="bbox"):
    """Reads a COCO results JSON (a list of {image_id, category_id, score, bbox and / or
    segmentation}) and checks it against the ground truth, with one clear error naming the
    file and the first bad entry instead of pycocotools' bare assertions."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"{path}: results file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(results, list):
        raise ResultsError(f"{path}: a results file is a JSON list of detections")
    need = "segmentation" if iou_type == "segm" else "bbox"
    image_ids = {img["id"] for img in ground_truth["images"]}
    category_ids = {c["id"] for c in ground_truth["categories"]}
    for i, r in enumerate(results):
        where = f"{path}: result #{i}"
        if not isinstance(r, dict):
            raise ResultsError(f"{where} is not an object")
        for key in ("image_id", "category_id", "score", need):
            if key not in r:
                raise ResultsError(f"{where} has no {key!r} (needed for {iou_type} scoring)")
        if r["image_id"] not in image_ids:
            raise ResultsError(f"{where}: image_id {r['image_id']!r} is not in the ground truth")
        if r["category_id"] not in category_ids:
            raise ResultsError(f"{where}: category_id {r['category_id']!r} is not in the "
                               f"ground truth's categories")
        if need == "bbox" and (not isinstance(r["bbox"], list) or len(r["bbox"]) != 4):
            raise ResultsError(f"{where}: bbox {r['bbox']!r} is not [x, y, width, height]")
    return results


class CocoEvaluator:
    """Accumulates detections and computes COCO metrics against ground truth.

    ground_truth: a COCO dict, the path of a COCO JSON file, or a DetectionDataset (its
    `to_coco()`: for COCO data the annotation file's own records), which also gives the
    class-index -> category-id map. For a dict or file, `category_ids` must give that map
    (class k -> category_ids[k]).

    Every ground-truth image is scored: one that never received detections (e.g. dropped by
    the input pipeline) counts as all misses and is reported as `missing_images` in the
    metrics, as are images the data set's reader left out as unusable.
    """

    def __init__(self, ground_truth, category_ids=None):
        self.reader_skipped = 0
        if hasattr(ground_truth, "to_coco"):
            category_ids = category_ids or ground_truth.category_ids
            self.reader_skipped = getattr(ground_truth.skipped, "images", 0)
            ground_truth = ground_truth.to_coco()
        elif isinstance(ground_truth, str):
            with open(ground_truth, encoding="utf-8") as f:
                ground_truth = json.load(f)
        if category_ids is None:
            category_ids = sorted(c["id"] for c in ground_truth["categories"])
        self.gt = ground_truth
        self.category_ids = list(category_ids)
        self._results = []
        self._seen = set()

    def reset(self):
        self._results = []
        self._seen = set()

    def add_detections(self, image_ids, boxes, scores, classes, num_detections=None,
                       masks=None):
        """Adds a batch: image_ids [B], boxes [B, N, 4] xyxy original pixels, scores [B, N],
        classes [B, N] contiguous ids, num_detections [B] (rows past it are padding),
        masks [B, N, H, W] binary masks in the original image size (optional, for segm AP)."""
        image_ids = np.asarray(image_ids).reshape(-1)
        boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
        for b, image_id in enumerate(image_ids):
            self._seen.add(int(image_id))
            n = boxes.shape[1] if num_detections is None else int(np.asarray(num_detections)[b])
            for i in range(n):
                x1, y1, x2, y2 = (float(v) for v in boxes[b, i])
                result = {"image_id": int(image_id),
                          "category_id": int(self.category_ids[int(classes[b, i])]),
                          "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[b, i])}
                if masks is not None:
                    rle = mask_utils.encode(np.asfortranarray(np.asarray(masks[b][i], np.uint8)))
                    rle["counts"] = rle["counts"].decode("ascii")
                    result["segmentation"] = rle
                self._results.append(result)

    def per_image(self):
        """{image_id: (boxes [N, 4] xyxy original pixels, classes [N] contiguous, scores [N])}
        of the detections so far."""
        index = {int(c): k for k, c in enumerate(self.category_ids)}
        return group_by_image(
            (r["image_id"], [r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2],
                             r["bbox"][1] + r["bbox"][3]], index[r["category_id"]], r["score"])
            for r in self._results)

    @property
    def results(self):
        """Detections so far as a COCO results list (data set category ids, xywh boxes)."""
        return list(self._results)

    def write_results(self, path, iou_type=None):
        """Writes the results JSON; with iou_type, in the form pycocotools scores for it (segm:
        without boxes, see `results_for`), so `COCOeval` on the file gives `evaluate`'s
        numbers."""
        results = self._results if iou_type is None else results_for(self._results, iou_type)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f)

    def missing_images(self):
        """Ground-truth image ids that never received detections."""
        return sorted({int(img["id"]) for img in self.gt["images"]} - self._seen)

    def evaluate(self, iou_type="bbox", verbose=True):
        """COCO metrics as a dict of the 12 named numbers (-1 where no ground truth falls),
        plus `images` (how many were scored) and `missing_images` when some had no
        detections run or were left out by the reader."""
        results = results_for(self._results, iou_type)
        if iou_type == "segm" and self._results and not results:
            raise ValueError("segm evaluation needs detections added with masks")
        missing = self.missing_images()
        if missing or self.reader_skipped:
            logger.warning("COCO evaluation: %d of %d images never received detections (ids %s"
                           "%s) and %d were left out by the reader; they count as misses",
                           len(missing), len(self.gt["images"]), missing[:10],
                           ", ..." if len(missing) > 10 else "", self.reader_skipped)
        extra = {"images": len(self.gt["images"]) - len(missing)}
        if missing or self.reader_skipped:
            extra["missing_images"] = len(missing) + self.reader_skipped
        if not results:
            logger.warning("COCO evaluation: no detections; every metric is 0")
            per_class = {c["name"]: {"AP": 0.0, "AP50": 0.0} for c in self.gt["categories"]}
            return dict({name: 0.0 for name in METRIC_NAMES}, per_class=per_class, **extra)
        ev, _ = _cocoeval(self.gt, results, iou_type)
        metrics = dict(zip(METRIC_NAMES, (float(v) for v in ev.stats)))
        per_class = per_class_ap(ev)
        if verbose:
            print(format_table(metrics, iou_type))
            if len(per_class) > 1:
                print(format_per_class(per_class, iou_type))
        return dict(metrics, per_class=per_class, **extra)


def group_by_image(detections):
    """(image_id, box xyxy, class, score) rows -> {image_id: (boxes [N, 4] float32, classes
    [N] int64, scores [N])}: the evaluators' per_image() layout."""
    grouped = {}
    for image_id, box, cls, score in detections:
        grouped.setdefault(image_id, []).append((box, cls, score))
    return {i: (np.asarray([d[0] for d in v], np.float32).reshape(-1, 4),
                np.asarray([d[1] for d in v], np.int64), np.asarray([d[2] for d in v]))
            for i, v in grouped.items()}
