"""Pascal VOC mAP: the VOC2007 11-point and the VOC2010+ area definitions.

Matching as the official devkit: detections of a class in decreasing score; each is compared
with the ground truth of its image it overlaps most. IoU >= iou_threshold with an unmatched box
is a true positive, with an already matched one a false positive (duplicate); a detection whose
best box is `difficult` counts neither way, and difficult objects are not in the recall
denominator. IoU uses continuous coordinates (no +1 pixel).
"""
import collections

import numpy as np


def average_precision(recall, precision, use_07_metric):
    """AP from a recall / precision curve (both [K], recall non-decreasing)."""
    recall, precision = np.asarray(recall, float), np.asarray(precision, float)
    if use_07_metric:
        # The devkit's thresholds, 0:0.1:1 stepped in floating point (0.30000000000000004,
        # ...), so a recall of exactly 0.3 does not reach the 4th point, as there.
        points = []
        for t in np.arange(0.0, 1.1, 0.1):
            above = precision[recall >= t]
            points.append(above.max() if above.size else 0.0)
        return float(np.sum(points) / 11.0)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _iou(box, boxes):
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    union = ((box[2] - box[0]) * (box[3] - box[1])
             + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class VocEvaluator:
    """Accumulates detections and computes per-class AP and mAP against a DetectionDataset."""

    def __init__(self, dataset, iou_threshold=0.5, use_07_metric=True):
        self.class_names = list(dataset.class_names)
        self.iou_threshold = iou_threshold
        self.use_07_metric = use_07_metric
        self.gt = {ex.image_id: ex for ex in dataset.examples}
        self.reset()

    def reset(self):
        self._dets = collections.defaultdict(list)  # class -> [(score, image_id, box)]

    def add_detections(self, image_ids, boxes, scores, classes, num_detections=None):
        """Same layout as CocoEvaluator.add_detections (xyxy original pixels, contiguous ids)."""
        image_ids = np.asarray(image_ids).reshape(-1)
        boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
        for b, image_id in enumerate(image_ids):
            n = boxes.shape[1] if num_detections is None else int(np.asarray(num_detections)[b])
            for i in range(n):
                self._dets[int(classes[b, i])].append(
                    (float(scores[b, i]), int(image_id), boxes[b, i].astype(float)))

    def per_image(self):
        """{image_id: (boxes [N, 4] xyxy original pixels, classes [N] contiguous, scores [N])}
        of the detections so far."""
        from tfdet.evaluation.coco import group_by_image
        return group_by_image((image_id, box, k, score) for k, dets in self._dets.items()
                              for score, image_id, box in dets)

    def class_ap(self, k):
        """AP of class k, or NaN when the class has no non-difficult ground truth."""
        gt_boxes, gt_difficult, matched = {}, {}, {}
        num_positive = 0
        for image_id, ex in self.gt.items():
            sel = ex.classes == k
            gt_boxes[image_id] = ex.boxes[sel].astype(float)
            gt_difficult[image_id] = ex.difficult[sel]
            matched[image_id] = np.zeros(int(sel.sum()), bool)
            num_positive += int((~ex.difficult[sel]).sum())
        if num_positive == 0:
            return float("nan")
        dets = sorted(self._dets.get(k, []), key=lambda d: -d[0])
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for i, (_, image_id, box) in enumerate(dets):
            boxes = gt_boxes.get(image_id)
            if boxes is None or not len(boxes):
                fp[i] = 1
                continue
            ious = _iou(box, boxes)
            j = int(np.argmax(ious))
            if ious[j] >= self.iou_threshold:
                if gt_difficult[image_id][j]:
                    continue
                if not matched[image_id][j]:
                    tp[i] = matched[image_id][j] = 1
                else:
                    fp[i] = 1
            else:
                fp[i] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / num_positive
        precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
        return average_precision(recall, precision, self.use_07_metric)

    def evaluate(self, verbose=True):
        """{'mAP': ..., 'AP/<class name>': ...}; the mean skips classes without ground truth."""
        aps = {name: self.class_ap(k) for k, name in enumerate(self.class_names)}
        valid = [v for v in aps.values() if not np.isnan(v)]
        metrics = {"mAP": float(np.mean(valid)) if valid else 0.0}
        metrics.update({f"AP/{name}": v for name, v in aps.items()})
        if verbose:
            kind = "11-point (VOC2007)" if self.use_07_metric else "area (VOC2010+)"
            print(f"VOC mAP@{self.iou_threshold} {kind}: {metrics['mAP']:.4f}")
            for name, v in aps.items():
                print(f"  {name:>16s}: {v:.4f}")
        return metrics
