"""COCO JSON reader: boxes, crowd flags, polygon / RLE masks, category ids mapped both ways."""
import json
import numbers
import os

from tfdet.data.example import SkipLog
from tfdet.data.validate import AnnotationError, RawImage, make_dataset


def _require(container, key, kind, path, where):
    if not isinstance(container, dict) or key not in container:
        raise AnnotationError(path, f"{where} has no {key!r} field")
    value = container[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AnnotationError(path, f"{where}: {key!r} is {type(value).__name__}, expected "
                                    f"{getattr(kind, '__name__', kind)}")
    return value


def load_coco_json(path):
    """Parses and structurally checks a COCO annotation file; raises AnnotationError."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise AnnotationError(path, "annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(path, f"not valid JSON ({err})") from None
    except RecursionError:
        raise AnnotationError(path, "not valid JSON (nested too deeply to parse)") from None
    if not isinstance(data, dict):
        raise AnnotationError(path, "top level is not a JSON object")
    _require(data, "images", list, path, "the file")
    _require(data, "categories", list, path, "the file")
    if not isinstance(data.get("annotations", []), list):
        raise AnnotationError(path, "'annotations' is not a list")
    return data


def read_coco(annotation_file, image_root=None, *, check_images=True, keep_empty=False):
    """Reads a COCO detection / instance-segmentation file into a DetectionDataset.

    image_root defaults to the folder of the annotation file. Classes are the categories
    sorted by id; `category_ids[k]` maps class k back to the COCO id for results files.
    """
    data = load_coco_json(annotation_file)
    if image_root is None:
        image_root = os.path.dirname(os.path.abspath(annotation_file))
    log = SkipLog(os.path.basename(annotation_file))
    categories = {}
    for i, cat in enumerate(data["categories"]):
        cid = _require(cat, "id", numbers.Integral, annotation_file, f"category #{i}")
        if cid in categories:
            raise AnnotationError(annotation_file, f"category id {cid} appears twice")
        categories[cid] = str(cat.get("name", cid))
    category_ids = sorted(categories)

    images, by_id = [], {}
    for i, img in enumerate(data["images"]):
        where = f"image #{i}"
        image_id = _require(img, "id", numbers.Integral, annotation_file, where)
        file_name = _require(img, "file_name", str, annotation_file, where)
        raw = RawImage(file_name=file_name, image_id=int(image_id),
                       height=img.get("height"), width=img.get("width"))
        images.append(raw)
        by_id.setdefault(int(image_id), raw)  # a duplicate id is skipped by build_examples

    seen_ann = set()
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"annotation #{i}"
        image_id = _require(ann, "image_id", numbers.Integral, annotation_file, where)
        category = _require(ann, "category_id", numbers.Integral, annotation_file, where)
        bbox = _require(ann, "bbox", list, annotation_file, where)
        if len(bbox) != 4 or not all(isinstance(v, numbers.Real) for v in bbox):
            raise AnnotationError(annotation_file, f"{where}: bbox {bbox!r} is not 4 numbers")
        ann_id = ann.get("id")
        if ann_id is not None:
            if ann_id in seen_ann:
                log.skip(f"annotation id {ann_id}", "duplicate annotation id")
                continue
            seen_ann.add(ann_id)
        raw = by_id.get(int(image_id))
        if raw is None:
            log.skip(f"annotation id {ann_id}", f"refers to unknown image id {image_id}")
            continue
        x, y, w, h = (float(v) for v in bbox)
        raw.add([x, y, x + w, y + h], int(category), is_crowd=bool(ann.get("iscrowd", 0)),
                mask=ann.get("segmentation"))
    dataset = make_dataset(os.path.basename(annotation_file), images, image_root,
                           [categories[c] for c in category_ids], category_ids, log,
                           check_images=check_images, keep_empty=keep_empty)
    dataset.coco_file = os.path.abspath(annotation_file)
    return dataset
