"""The checks every reader shares: image paths, image files and boxes.

Readers parse their own format into `RawImage` records; `build_examples` turns them into
Examples, skipping and counting (with a warning naming the file) whatever a training run must
not meet: images that are missing, empty, not images, truncated, over the pixel limit or that
do not decode cleanly (each is decoded once; see image_check), paths that escape the image
root, duplicate ids, boxes that are NaN, inverted or outside the image, unknown categories, and
(unless asked to keep them) images left without boxes.
"""
import dataclasses
import math
import os
from typing import Optional

import numpy as np

from tfdet.data.example import DetectionDataset, SkipLog, make_example
from tfdet.data.image_check import InvalidImage, check_image, save_check_cache


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and the problem."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class UnsafePath(InvalidImage):
    """An image path that is absolute or leaves the image root."""


@dataclasses.dataclass
class RawImage:
    """One image as a reader parsed it; boxes are xyxy pixels, labels the data set's keys."""

    file_name: str
    image_id: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    boxes: list = dataclasses.field(default_factory=list)
    labels: list = dataclasses.field(default_factory=list)
    is_crowd: list = dataclasses.field(default_factory=list)
    difficult: list = dataclasses.field(default_factory=list)
    masks: list = dataclasses.field(default_factory=list)
    image_root: Optional[str] = None  # this image's own root (else the reader's one root)
    attributes: dict = dataclasses.field(default_factory=dict)  # name -> per-box values

    def add(self, box, label, is_crowd=False, difficult=False, mask=None, **attributes):
        """One box; attributes: integer per-box annotations (every box of an image gives the
        same names)."""
        for name, value in attributes.items():
            self.attributes.setdefault(name, []).append(int(value))
        self.boxes.append(box)
        self.labels.append(label)
        self.is_crowd.append(is_crowd)
        self.difficult.append(difficult)
        self.masks.append(mask)


def resolve_image_path(image_root, file_name):
    """Absolute path of `file_name` under `image_root`; raises InvalidImage if it escapes it."""
    if "\x00" in file_name:
        raise InvalidImage("file name contains a NUL byte")
    if os.path.isabs(file_name):
        raise UnsafePath(f"absolute path {file_name!r} is not allowed (paths are relative to "
                         f"the image root)")
    root = os.path.realpath(image_root)
    path = os.path.realpath(os.path.join(root, file_name))
    if os.path.commonpath([root, path]) != root:
        raise UnsafePath(f"path {file_name!r} escapes the image root {image_root}")
    return path


def _size_field(value, name):
    """An annotated height / width as an int (numeric strings are read), None if absent."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number != int(number) or isinstance(value, bool):
        raise InvalidImage(f"{name} {value!r} is not a whole number")
    return int(number)


def _box_problem(box, height, width):
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        return "invalid box (not 4 finite numbers)"
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return "invalid box (x2 <= x1 or y2 <= y1)"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return "box outside the image"
    return None


def keep_valid_boxes(boxes, labels, height, width, label_problem, log, describe):
    """Indices of the boxes that pass the box checks and whose label_problem(label) is None;
    each other box is skipped and counted in `log` under describe(index)."""
    keep = []
    for i, (box, label) in enumerate(zip(boxes, labels)):
        problem = _box_problem([float(v) for v in box], height, width) or label_problem(label)
        if problem:
            log.skip(describe(i), problem)
            continue
        keep.append(i)
    return keep


def build_examples(raw_images, image_root, label_to_index, log: SkipLog, *, check_images=True,
                   keep_empty=False, first_id=1):
    """RawImage records -> list of Examples (see the module docstring for what is skipped).

    label_to_index: the data set's category key (id or name) -> contiguous class index.
    Images without an id get first_id, first_id + 1, ... in order. Boxes partly outside the
    image are clipped to it.
    """
    examples, seen_ids = [], set()
    for n, raw in enumerate(raw_images):
        image_id = raw.image_id if raw.image_id is not None else first_id + n
        where = f"{raw.file_name} (image id {image_id})"
        if image_id in seen_ids:
            log.skip(where, "duplicate image id", image=True)
            continue
        seen_ids.add(image_id)
        try:
            raw.height, raw.width = _size_field(raw.height, "height"), _size_field(raw.width,
                                                                                   "width")
            path = resolve_image_path(raw.image_root or image_root, raw.file_name)
            if check_images or raw.height is None or raw.width is None:
                height, width = check_image(path)
            else:
                height, width = raw.height, raw.width
        except UnsafePath:
            log.skip(where, "path escapes the image root", image=True)
            continue
        except InvalidImage as err:
            log.skip(where, str(err), image=True)
            continue
        if raw.height and raw.width and (raw.height, raw.width) != (height, width):
            log.skip(where, f"annotated size {raw.height}x{raw.width} differs from the file's "
                            f"{height}x{width}", image=True)
            continue
        keep = keep_valid_boxes(
            raw.boxes, raw.labels, height, width,
            lambda label: None if label in label_to_index else "unknown category", log,
            lambda i: f"{where} box {i} {list(raw.boxes[i])} label {raw.labels[i]!r}")
        if not keep and not keep_empty:
            log.skip(where, "no boxes")
            continue
        boxes = np.asarray([raw.boxes[i] for i in keep], np.float32).reshape(-1, 4)
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        masks = [raw.masks[i] for i in keep]
        examples.append(make_example(
            image_id, path, height, width, boxes,
            [label_to_index[raw.labels[i]] for i in keep],
            [raw.is_crowd[i] for i in keep], [raw.difficult[i] for i in keep],
            masks if any(m is not None for m in masks) else None,
            {k: [v[i] for i in keep] for k, v in raw.attributes.items()} or None))
    save_check_cache()
    return examples


def make_dataset(name, raw_images, image_root, class_names, label_keys, log, category_ids=None,
                 **kwargs):
    """build_examples + the class map, as a DetectionDataset.

    label_keys[k]: how the files name class k (a COCO id, a VOC name, ...); category_ids[k]:
    the integer id results files use for it (label_keys by default).
    """
    label_to_index = {key: i for i, key in enumerate(label_keys)}
    examples = build_examples(raw_images, image_root, label_to_index, log, **kwargs)
    ids = list(label_keys) if category_ids is None else list(category_ids)
    return DetectionDataset(name=name, examples=examples, class_names=list(class_names),
                            category_ids=[int(i) for i in ids], skipped=log)
