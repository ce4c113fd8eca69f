"""Readers on the real sample data: counts, class maps, coordinate conventions."""
import json

import numpy as np
import pytest

from tests.conftest import require_shared
from tfdet import data


def test_csv_raccoon_split():
    root = require_shared("raccoon")
    train = data.read_csv_labels(root / "data/train_labels.csv", root / "images")
    test = data.read_csv_labels(root / "data/test_labels.csv", root / "images")
    assert (len(train), len(test)) == (160, 40)
    assert train.class_names == ["raccoon"] and train.category_ids == [1]
    assert train.skipped.total == 0
    assert sum(e.num_boxes for e in train.examples) + sum(e.num_boxes for e in test.examples) == 217
    # raccoon-17.jpg,259,194,raccoon,95,60,167,118 (first row of the train file)
    ex = next(e for e in train.examples if e.path.endswith("raccoon-17.jpg"))
    assert (ex.height, ex.width) == (194, 259)
    np.testing.assert_allclose(ex.boxes, [[95, 60, 167, 118]])


def test_voc_xml_raccoon_is_one_based():
    root = require_shared("raccoon")
    voc = data.read_voc(str(root), None, None, annotations_dir="annotations", images_dir="images")
    assert len(voc) == 200 and voc.class_names == ["raccoon"] and voc.category_ids == [1]
    csv = data.read_csv_labels(root / "data/train_labels.csv", root / "images")
    by_name = {e.path: e for e in voc.examples}
    for ex in csv.examples[:20]:
        # Same numbers in both files; VOC's are 1-based pixel indices: x1, y1 move by -1.
        np.testing.assert_allclose(by_name[ex.path].boxes, ex.boxes - [1, 1, 0, 0])


def test_coco128_category_map_and_crowd():
    root = require_shared("coco128")
    ann = root / "annotations/instances_train2017_first128.json"
    ds = data.read_coco(str(ann), str(root / "images/train2017"))
    raw = json.loads(ann.read_text())
    assert ds.num_classes == 80
    assert ds.category_ids == sorted(c["id"] for c in raw["categories"])
    assert ds.category_ids[-1] == 90  # ids have gaps, classes do not
    # Two images have no annotation at all: skipped and counted, or kept on request.
    assert len(ds) == 126 and ds.skipped.counts["no boxes"] == 2
    assert len(data.read_coco(str(ann), str(root / "images/train2017"), keep_empty=True)) == 128
    assert sum(e.num_boxes for e in ds.examples) == 939
    assert sum(int(e.is_crowd.sum()) for e in ds.examples) == 10
    # Masks kept as given: polygons for objects, RLE for crowds.
    crowd = [e.masks[i] for e in ds.examples for i in np.flatnonzero(e.is_crowd)]
    assert all(isinstance(m, dict) and "counts" in m for m in crowd)
    # Class k maps back to the category of the original annotation.
    gt = ds.to_coco()
    first = raw["annotations"][0]
    match = [a for a in gt["annotations"] if a["image_id"] == first["image_id"]
             and np.allclose(a["bbox"], first["bbox"], atol=1e-3)]
    assert match and match[0]["category_id"] == first["category_id"]


def test_yolo_labels_equal_coco_json_boxes():
    root = require_shared("coco128")
    yolo = data.read_yolo(str(root / "images/train2017"), str(root / "labels/train2017"),
                          str(root / "labels/classes.txt"))
    coco = data.read_coco(str(root / "annotations/instances_train2017_first128.json"),
                          str(root / "images/train2017"))
    assert yolo.class_names == coco.class_names
    by_path = {e.path: e for e in coco.examples}
    checked = 0
    for ex in yolo.examples:
        ref = by_path[ex.path]
        keep = ~ref.is_crowd
        order = lambda b, c: np.lexsort(np.concatenate([b, c[:, None]], 1).T)  # noqa: E731
        a_boxes, a_cls = ex.boxes, ex.classes
        b_boxes, b_cls = ref.boxes[keep], ref.classes[keep]
        ia, ib = order(np.round(a_boxes), a_cls), order(np.round(b_boxes), b_cls)
        np.testing.assert_allclose(a_boxes[ia], b_boxes[ib], atol=0.05)
        np.testing.assert_array_equal(a_cls[ia], b_cls[ib])
        checked += 1
    assert checked >= 120


def test_specs_parse_and_reject():
    root = require_shared("raccoon")
    ds = data.load_dataset(f"csv:{root}/data/test_labels.csv:{root}/images")
    assert len(ds) == 40
    with pytest.raises(ValueError, match="bad data spec"):
        data.load_dataset("coco")
    with pytest.raises(ValueError, match="bad data spec"):
        data.load_dataset("imagenet:/x")


def test_sample_data_is_deterministic(tmp_path):
    from tfdet.data import sample

    a, _ = sample.ensure_sample_data("val", str(tmp_path / "a"))
    b, _ = sample.ensure_sample_data("val", str(tmp_path / "b"))
    assert open(a).read() == open(b).read()
    img_a = (tmp_path / "a/val/val_0005.jpg").read_bytes()
    assert img_a == (tmp_path / "b/val/val_0005.jpg").read_bytes()
    ds = data.load_sample_dataset("val", str(tmp_path / "a"))
    assert len(ds) == 32 and ds.class_names == list(sample.CLASS_NAMES)
    assert ds.skipped.total == 0 and all(e.masks is not None for e in ds.examples)
