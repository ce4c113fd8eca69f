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


class CocoEvaluator:
    """Accumulates detections and computes COCO metrics against ground truth.

    ground_truth: a COCO dict, the path of a COCO JSON file, or a DetectionDataset (its
    `to_coco()`), which also gives the class-index -> category-id map. For a dict or file,
    `category_ids` must give that map (class k -> category_ids[k]).
    """

    def __init__(self, ground_truth, category_ids=None):
        if hasattr(ground_truth, "to_coco"):
            category_ids = category_ids or ground_truth.category_ids
            ground_truth = ground_truth.to_coco()
        elif isinstance(ground_truth, str):
            with open(ground_truth, encoding="utf-8") as f:
                ground_truth = json.load(f)
        if category_ids is None:
            category_ids = sorted(c["id"] for c in ground_truth["categories"])
        self.gt = ground_truth
        self.category_ids = list(category_ids)
        self._results = []

    def reset(self):
        self._results = []

    def add_detections(self, image_ids, boxes, scores, classes, num_detections=None,
                       masks=None):
        """Adds a batch: image_ids [B], boxes [B, N, 4] xyxy original pixels, scores [B, N],
        classes [B, N] contiguous ids, num_detections [B] (rows past it are padding),
        masks [B, N, H, W] binary masks in the original image size (optional, for segm AP)."""
        image_ids = np.asarray(image_ids).reshape(-1)
        boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
        for b, image_id in enumerate(image_ids):
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

    @property
    def results(self):
        """Detections so far as a COCO results list (data set category ids, xywh boxes)."""
        return list(self._results)

    def write_results(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self._results, f)

    def evaluate(self, iou_type="bbox", verbose=True):
        """COCO metrics as a dict of the 12 named numbers (-1 where no ground truth falls)."""
        if not self._results:
            logger.warning("COCO evaluation: no detections; every metric is 0")
            return {name: 0.0 for name in METRIC_NAMES}
        gt = coco_from_dict(self.gt)
        results = self._results
        if iou_type == "segm":
            results = [r for r in results if "segmentation" in r]
            if not results:
                raise ValueError("segm evaluation needs detections added with masks")
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(copy.deepcopy(results))
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        metrics = {name: float(v) for name, v in zip(METRIC_NAMES, ev.stats)}
        if verbose:
            print(format_table(metrics, iou_type))
        return metrics
