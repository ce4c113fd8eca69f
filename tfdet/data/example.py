"""The one example format every reader produces, and the log of what a reader skipped."""
import collections
import dataclasses
import logging
from typing import Optional

import numpy as np

logger = logging.getLogger("tfdet.data")


@dataclasses.dataclass
class Example:
    """One annotated image.

    path: absolute image path (None when the image bytes live in a TFRecord).
    boxes: [N, 4] float32 xyxy absolute pixels of the original image.
    classes: [N] int32 contiguous class indices 0..K-1.
    is_crowd / difficult: [N] bool (COCO crowd regions, VOC `difficult` objects).
    masks: None, or one segmentation per box as in COCO: a list of polygons
      ([x1, y1, x2, y2, ...] in pixels) or an RLE dict {"size": [h, w], "counts": ...}.
    """

    image_id: int
    path: Optional[str]
    height: int
    width: int
    boxes: np.ndarray
    classes: np.ndarray
    is_crowd: np.ndarray
    difficult: np.ndarray
    masks: Optional[list] = None

    @property
    def num_boxes(self):
        return int(self.boxes.shape[0])


class SkipLog:
    """Counts what a reader skipped, by reason, and warns once per item naming the file."""

    def __init__(self, source):
        self.source = source
        self.counts = collections.Counter()
        self.items = []

    def skip(self, what, reason):
        self.counts[reason] += 1
        self.items.append((str(what), reason))
        logger.warning("%s: skipped %s: %s", self.source, what, reason)

    @property
    def total(self):
        return sum(self.counts.values())

    def summary(self):
        if not self.counts:
            return f"{self.source}: nothing skipped"
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
        return f"{self.source}: skipped {parts}"


@dataclasses.dataclass
class DetectionDataset:
    """Examples plus the class map: class index k <-> data set id `category_ids[k]`.

    tfrecord_pattern is set when the images are read from TFRecord shards instead of paths.
    """

    name: str
    examples: list
    class_names: list
    category_ids: list
    skipped: SkipLog
    tfrecord_pattern: Optional[str] = None

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.examples)

    def to_coco(self):
        """Ground truth as a COCO dict (xywh boxes, the data set's own category ids).

        Evaluation of any reader's data goes through this, so every format gets COCO metrics.
        COCO has no `difficult`: VOC difficult objects are plain ground truth here (the VOC
        evaluator handles them as the devkit does).
        """
        images, annotations = [], []
        ann_id = 1
        for ex in self.examples:
            images.append({"id": int(ex.image_id), "width": int(ex.width),
                           "height": int(ex.height),
                           "file_name": ex.path or str(ex.image_id)})
            for i in range(ex.num_boxes):
                x1, y1, x2, y2 = (float(v) for v in ex.boxes[i])
                ann = {
                    "id": ann_id,
                    "image_id": int(ex.image_id),
                    "category_id": int(self.category_ids[int(ex.classes[i])]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(ex.is_crowd[i]),
                }
                if ex.masks is not None and ex.masks[i] is not None:
                    ann["segmentation"] = ex.masks[i]
                annotations.append(ann)
                ann_id += 1
        categories = [{"id": int(c), "name": n} for c, n in zip(self.category_ids,
                                                                  self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}


def make_example(image_id, path, height, width, boxes, classes, is_crowd=None, difficult=None,
                 masks=None):
    """Builds an Example with arrays of the right dtypes and shapes."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = boxes.shape[0]
    return Example(
        image_id=int(image_id), path=path, height=int(height), width=int(width), boxes=boxes,
        classes=np.asarray(classes, np.int32).reshape(n),
        is_crowd=np.zeros(n, bool) if is_crowd is None else np.asarray(is_crowd, bool).reshape(n),
        difficult=np.zeros(n, bool) if difficult is None else np.asarray(difficult,
                                                                        bool).reshape(n),
        masks=masks)
