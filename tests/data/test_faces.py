"""Face readers: dlib's XML on the real faces sample; WIDER FACE's box lists (its flags kept per
box, empty images and zero-size boxes counted) and FDDB's ellipse folds (each ellipse's
bounding box by hand) on hand-written trees, malformed lists named."""
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import require_shared
from tfdet.data import AnnotationError, load_dataset, read_dlib_xml, read_fddb, read_wider_face


def test_dlib_faces_sample():
    root = require_shared("faces_dlib")
    train = read_dlib_xml(str(root / "training.xml"))
    test = load_dataset(f"dlib:{root / 'testing.xml'}")
    assert (len(train.examples), sum(ex.num_boxes for ex in train.examples)) == (4, 18)
    assert (len(test.examples), sum(ex.num_boxes for ex in test.examples)) == (5, 25)
    assert train.class_names == ["face"] and train.category_ids == [1]
    first = train.examples[0]
    assert first.path.endswith("2007_007763.jpg") and (first.height, first.width) == (375, 500)
    # <box top='90' left='194' width='37' height='37'/>: inclusive pixels -> [194, 90, 231, 127]
    np.testing.assert_allclose(first.boxes[0], [194, 90, 231, 127])
    assert first.classes.tolist() == [0] * 7 and not first.difficult.any()


def _png(path, height, width):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(np.full((height, width, 3), 90, np.uint8)).numpy())


WIDER_LIST = """0--Parade/0_Parade_marchingband_1_5.jpg
2
10 20 30 40 0 0 0 0 1 0
50 60 0 8 2 0 0 1 0 0
0--Parade/0_Parade_Parade_0_1.jpg
0
0 0 0 0 0 0 0 0 0 0
1--Handshaking/1_Handshaking_1.jpg
1
5 6 7 8 1 1 0 0 2 1
"""


def _wider(tmp_path, listing=WIDER_LIST):
    for name in ("0--Parade/0_Parade_marchingband_1_5.jpg", "0--Parade/0_Parade_Parade_0_1.jpg",
                 "1--Handshaking/1_Handshaking_1.jpg"):
        _png(tmp_path / "WIDER_val" / "images" / name, 100, 120)
    split = tmp_path / "wider_face_split"
    split.mkdir(exist_ok=True)
    (split / "wider_face_val_bbx_gt.txt").write_text(listing)
    return tmp_path


def test_wider_face_boxes_flags_and_skips(tmp_path):
    root = _wider(tmp_path)
    data = read_wider_face(str(root), "val")
    # The image without faces is left out (keep_empty keeps it); the 0 x 8 box is skipped.
    assert [ex.image_id for ex in data.examples] == [1, 3]
    first, second = data.examples
    np.testing.assert_allclose(first.boxes, [[10, 20, 40, 60]])
    assert {k: v.tolist() for k, v in first.attributes.items()} == {
        "blur": [0], "expression": [0], "illumination": [0], "invalid": [0],
        "occlusion": [1], "pose": [0]}
    assert second.attributes["blur"].tolist() == [1]
    assert second.attributes["occlusion"].tolist() == [2]
    assert data.skipped.counts == {"invalid box (x2 <= x1 or y2 <= y1)": 1, "no boxes": 1}
    kept = load_dataset(f"widerface:{root}:val", keep_empty=True)
    assert [ex.num_boxes for ex in kept.examples] == [1, 0, 1]


@pytest.mark.parametrize("listing, message", [
    ("a.jpg\ntwo\n", r"line 2: expected the face count of a.jpg, got 'two'"),
    ("a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n", r"a.jpg: 2 faces announced, the file ends first"),
    ("a.jpg\n1\n1 2 3 4\n", r"line 3: expected 10 numbers"),
])
def test_wider_face_malformed_lists_name_the_line(tmp_path, listing, message):
    root = _wider(tmp_path, listing)
    with pytest.raises(AnnotationError, match=message):
        read_wider_face(str(root), "val")
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        read_wider_face(str(root), "test")


FDDB_FOLD_1 = """2002/08/11/big/img_591
1
40.0 30.0 0.0 100.0 80.0  1
2002/08/26/big/img_265
2
40.0 30.0 1.5707963267948966 60.0 70.0  1
50.0 10.0 0.7853981633974483 150.0 100.0  1
"""
FDDB_FOLD_2 = """2003/01/01/big/img_1
1
20.0 10.0 0.0 5.0 50.0  1
"""


def _fddb(tmp_path, fold1=FDDB_FOLD_1):
    for name in ("2002/08/11/big/img_591", "2002/08/26/big/img_265", "2003/01/01/big/img_1"):
        path = tmp_path / "originalPics" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_jpeg(np.full((160, 200, 3), 90, np.uint8)).numpy())
    folds = tmp_path / "FDDB-folds"
    folds.mkdir(exist_ok=True)
    (folds / "FDDB-fold-01-ellipseList.txt").write_text(fold1)
    (folds / "FDDB-fold-02-ellipseList.txt").write_text(FDDB_FOLD_2)
    return tmp_path


def test_fddb_ellipses_become_their_bounding_boxes(tmp_path):
    root = _fddb(tmp_path)
    data = load_dataset(f"fddb:{root}:1")
    assert [ex.path.rsplit("/", 1)[1] for ex in data.examples] == ["img_591.jpg", "img_265.jpg"]
    # Angle 0: the major axis along x, so a half-width of 40 and half-height of 30.
    np.testing.assert_allclose(data.examples[0].boxes, [[60, 50, 140, 110]])
    # Angle pi/2: the major axis along y. Angle pi/4: half-sides sqrt((50^2 + 10^2) / 2).
    half = np.sqrt((50 ** 2 + 10 ** 2) / 2)
    np.testing.assert_allclose(data.examples[1].boxes,
                               [[30, 30, 90, 110],
                                [150 - half, 100 - half, 150 + half, min(100 + half, 160)]],
                               atol=1e-4)
    assert data.class_names == ["face"] and data.category_ids == [1]
    # Every fold by default; fold 2's face sticks out of the image on the left: clipped.
    both = read_fddb(str(root))
    assert len(both.examples) == 3
    np.testing.assert_allclose(both.examples[2].boxes, [[0, 40, 25, 60]])
    assert len(load_dataset(f"fddb:{root}:1-2").examples) == 3


@pytest.mark.parametrize("fold, message", [
    ("a\n1\n1 2 3\n", r"line 3: expected an ellipse"),
    ("a\nmany\n", r"line 2: expected the face count of a, got 'many'"),
    ("a\n3\n1 2 0 4 5 1\n", r"a: 3 faces announced, the file ends first"),
])
def test_fddb_malformed_folds_name_the_line(tmp_path, fold, message):
    root = _fddb(tmp_path, fold)
    with pytest.raises(AnnotationError, match=message):
        read_fddb(str(root), "1")
    with pytest.raises(ValueError, match="FDDB folds are 1..10"):
        read_fddb(str(root), "0-3")
    with pytest.raises(AnnotationError, match="FDDB fold not found"):
        read_fddb(str(root), "7")
