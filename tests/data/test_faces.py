"""Face readers: dlib's XML on the real faces sample, WIDER FACE's box lists on a hand-written
tree (its flags kept per box, empty images and zero-size boxes counted, malformed lists named)."""
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import require_shared
from tfdet.data import AnnotationError, load_dataset, read_dlib_xml, read_wider_face


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
