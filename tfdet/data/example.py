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
    attributes: None, or per-box annotations a format carries beside the box, {name: [N]
      int32} (WIDER FACE: blur, expression, illumination, invalid, occlusion, pose).
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
    attributes: Optional[dict] = None

    @property
    def num_boxes(self):
        return int(self.boxes.shape[0])


class SkipLog:
    """Counts what a reader skipped, by reason, and warns once per item naming the file."""

    def __init__(self, source):
        self.source = source
        self.counts = collections.Counter()
        self.items = []
        self.images = 0  # whole images left out as unusable (not boxes, not empty images)

    def skip(self, what, reason, image=False):
        """Counts and logs one skipped item; image=True for a whole unusable image."""
        self.images += int(image)
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
    coco_file is the COCO annotation file the examples came from (COCO data only): evaluation
    scores against that file's own records, as pycocotools does when called on the file.
    """

    name: str
    examples: list
    class_names: list
    category_ids: list
    skipped: SkipLog
    tfrecord_pattern: Optional[str] = None
    coco_file: Optional[str] = None

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.examples)

    def to_coco(self):
        """Ground truth as a COCO dict (xywh boxes, the data set's own category ids) for the
        images this data set holds.

        For COCO data (`coco_file`) these are the file's own image and annotation records,
        untouched: `area` as annotated (the segmentation's area), boxes as written, crowd
        regions and every annotation of a kept image, so scores equal pycocotools' on the
        file. Other formats are converted from the examples: `area` is the segmentation's
        area where there is one, else the box's. COCO has no `difficult`: VOC difficult objects
        are plain ground truth here (the VOC evaluator handles them as the devkit does).
        """
        if self.coco_file:
            return self._coco_records()
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
                    ann["area"] = segmentation_area(ex.masks[i], ex.height, ex.width)
                annotations.append(ann)
                ann_id += 1
        categories = [{"id": int(c), "name": n} for c, n in zip(self.category_ids,
                                                                  self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def _coco_records(self):
        from tfdet.data.coco import load_coco_json  # the reader's structural checks

        source = load_coco_json(self.coco_file)
        kept = {int(ex.image_id) for ex in self.examples}
        images = [img for img in source["images"] if img["id"] in kept]
        annotations = [a for a in source.get("annotations", []) if a.get("image_id") in kept]
        return {"images": images, "annotations": annotations,
                "categories": source["categories"]}


def segmentation_rle(segmentation, height, width):
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as one pycocotools RLE
    on a height x width image; None for polygons with no usable ring."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, int(height), int(width)))
    if isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        return mask_utils.frPyObjects(segmentation, int(height), int(width))
    counts = segmentation["counts"]
    return dict(segmentation, counts=counts.encode() if isinstance(counts, str) else counts)


def segmentation_area(segmentation, height, width):
    """Area in pixels of a COCO segmentation (polygons or RLE), as pycocotools measures it."""
    from pycocotools import mask as mask_utils

    rle = segmentation_rle(segmentation, height, width)
    return 0.0 if rle is None else float(mask_utils.area(rle))


def make_example(image_id, path, height, width, boxes, classes, is_crowd=None, difficult=None,
                 masks=None, attributes=None):
    """Builds an Example with arrays of the right dtypes and shapes."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = boxes.shape[0]
    if attributes is not None:
        attributes = {k: np.asarray(v, np.int32).reshape(n) for k, v in attributes.items()}
    return Example(
        image_id=int(image_id), path=path, height=int(height), width=int(width), boxes=boxes,
        classes=np.asarray(classes, np.int32).reshape(n),
        is_crowd=np.zeros(n, bool) if is_crowd is None else np.asarray(is_crowd, bool).reshape(n),
        difficult=np.zeros(n, bool) if difficult is None else np.asarray(difficult,
                                                                        bool).reshape(n),
        masks=masks, attributes=attributes)
