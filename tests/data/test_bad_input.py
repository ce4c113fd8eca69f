"""Every kind of bad input: skipped and counted with a reason naming the file, or (for a
malformed annotation file) an error naming the file and the problem. Nothing crashes."""
import json
import re
import os

import numpy as np
import pytest
import tensorflow as tf

from tfdet import data
from tfdet.data.transforms import Compose, ResizeSquare


def write_jpeg(path, h=40, w=60, channels=3):
    img = np.random.default_rng(0).integers(0, 255, (h, w, channels), dtype=np.uint8)
    tf.io.write_file(str(path), tf.io.encode_jpeg(img))


def write_png(path, h=40, w=60, channels=4):
    img = np.random.default_rng(1).integers(0, 255, (h, w, channels), dtype=np.uint8)
    tf.io.write_file(str(path), tf.io.encode_png(img))


@pytest.fixture
def coco_dir(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("good.jpg", "good2.jpg", "dup.jpg", "nobox.jpg", "corrupt_later.jpg"):
        write_jpeg(images / name)
    write_png(images / "rgba.png")
    write_jpeg(images / "gray.jpg", channels=1)
    full = (images / "good.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (images / "empty.jpg").write_bytes(b"")
    (images / "notes.jpg").write_text("this is not an image")
    names = ["good.jpg", "good2.jpg", "truncated.jpg", "empty.jpg", "notes.jpg", "missing.jpg",
             "../../etc/passwd", "/etc/passwd", "nobox.jpg", "rgba.png", "gray.jpg",
             "corrupt_later.jpg"]
    imgs = [{"id": i + 1, "file_name": n, "height": 40, "width": 60} for i, n in enumerate(names)]
    imgs.append({"id": 1, "file_name": "dup.jpg", "height": 40, "width": 60})  # duplicate id
    anns = []

    def ann(image_id, bbox, cat=1, ann_id=None):
        anns.append({"id": ann_id or len(anns) + 100, "image_id": image_id, "category_id": cat,
                     "bbox": bbox, "iscrowd": 0})

    ann(1, [10, 10, 20, 20])
    ann(1, [10, 10, 0, 5])            # x2 <= x1
    ann(1, [100, 100, 10, 10])        # outside the image
    ann(1, [float("nan"), 1, 5, 5])   # NaN -> JSON NaN
    ann(1, [5, 5, 10, 10], cat=99)    # unknown category
    ann(1, [5, 5, 10, 10], ann_id=100)  # duplicate annotation id (100 is the first)
    ann(1, [50, 30, 30, 30])          # partly outside: clipped to [50, 30, 60, 40]
    ann(2, [1, 1, 5, 5], cat=7)
    ann(999, [1, 1, 5, 5])            # unknown image
    for image_id in (3, 4, 5, 6, 7, 8, 10, 11, 12):
        ann(image_id, [1, 2, 30, 20])
    categories = [{"id": 1, "name": "a"}, {"id": 7, "name": "b"}]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": categories}))
    return path, images


def test_coco_bad_entries_are_skipped_and_counted(coco_dir, caplog):
    path, images = coco_dir
    ds = data.read_coco(str(path), str(images))
    got = sorted(os.path.basename(e.path) for e in ds.examples)
    assert got == ["corrupt_later.jpg", "good.jpg", "good2.jpg", "gray.jpg", "rgba.png"]
    c = ds.skipped.counts
    assert c["truncated JPEG (no end-of-image marker)"] == 1
    assert c["empty (zero-byte) file"] == 1
    assert c["not an image (unknown format: expected JPEG, PNG, GIF or BMP)"] == 1
    assert c["image file not found"] == 1
    assert c["path escapes the image root"] == 2
    assert c["no boxes"] == 1
    assert c["duplicate image id"] == 1
    assert c["duplicate annotation id"] == 1
    assert c["refers to unknown image id 999"] == 1
    assert c["invalid box (x2 <= x1 or y2 <= y1)"] == 1
    assert c["invalid box (not 4 finite numbers)"] == 1
    assert c["box outside the image"] == 1
    assert c["unknown category"] == 1
    good = next(e for e in ds.examples if e.path.endswith("good.jpg"))
    np.testing.assert_allclose(good.boxes, [[10, 10, 30, 30], [50, 30, 60, 40]])
    assert ds.examples[1].classes.tolist() == [1]  # category 7 -> class 1
    # Each skip was logged with the file it concerns.
    assert any("truncated.jpg" in r.getMessage() for r in caplog.records)
    assert any("../../etc/passwd" in r.getMessage() for r in caplog.records)


def test_pipeline_survives_image_corrupted_after_reading(coco_dir, caplog):
    path, images = coco_dir
    ds = data.read_coco(str(path), str(images))
    for name in ("corrupt_later.jpg", "good2.jpg"):  # the last image and one in the middle
        (images / name).write_bytes(b"\xff\xd8\xff garbage \xff\xd9")
    pipeline = data.input_pipeline(ds, Compose([ResizeSquare(32)]), 2, training=False)
    batches = list(pipeline)
    ids = sorted(int(i) for b in batches for i in b["image_id"].numpy())
    corrupt = {e.image_id for e in ds.examples if e.path.endswith(("corrupt_later.jpg",
                                                                   "good2.jpg"))}
    assert not corrupt & set(ids) and len(ids) == 3
    # Each drop is counted and logged with its file (the last one once the pass ends).
    assert pipeline.drop_monitor.finish() == 2
    assert set(map(os.path.basename, pipeline.drop_monitor.dropped_files)) == {
        "corrupt_later.jpg", "good2.jpg"}
    assert any("dropped" in r.getMessage() and "good2.jpg" in r.getMessage()
               for r in caplog.records)
    # Grayscale and RGBA images came out as 3-channel RGB.
    assert all(b["images"].shape[-1] == 3 for b in batches)


@pytest.mark.parametrize("content,problem", [
    ("{not json", "not valid JSON"),
    ("[]", "top level is not a JSON object"),
    ('{"annotations": [], "categories": []}', "has no 'images' field"),
    ('{"images": [{"file_name": "a.jpg"}], "categories": []}', "image #0 has no 'id' field"),
    ('{"images": [], "categories": [], "annotations": [{"image_id": 1, "category_id": 1, '
     '"bbox": [1, 2, 3]}]}', "annotation #0: bbox [1, 2, 3] is not 4 numbers"),
    ('{"images": [], "categories": [{"id": "x"}]}', "category #0: 'id' is str"),
])
def test_malformed_coco_file_fails_at_once(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(data.AnnotationError, match=re.escape(problem)) as err:
        data.read_coco(str(path))
    assert str(path) in str(err.value)


def test_malformed_csv_voc_yolo_files(tmp_path):
    bad_csv = tmp_path / "labels.csv"
    bad_csv.write_text("filename,class,xmin\na.jpg,x,1\n")
    with pytest.raises(data.AnnotationError, match=r"labels.csv: missing columns"):
        data.read_csv_labels(str(bad_csv), str(tmp_path))
    bad_csv.write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,10,x,1,one,5,5\n")
    with pytest.raises(data.AnnotationError, match="line 2: a size or coordinate is not a number"):
        data.read_csv_labels(str(bad_csv), str(tmp_path))
    ann = tmp_path / "Annotations"
    ann.mkdir()
    (ann / "x.xml").write_text("<annotation><filename>x.jpg</filename><object>")
    with pytest.raises(data.AnnotationError, match=r"x.xml: not valid XML"):
        data.read_voc(str(tmp_path))
    (ann / "x.xml").write_text("<annotation><filename>x.jpg</filename><object><name>cat</name>"
                               "<bndbox><xmin>a</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax>"
                               "</bndbox></object></annotation>")
    with pytest.raises(data.AnnotationError, match=r"<xmin> is 'a', not a number"):
        data.read_voc(str(tmp_path))
    imgs, labels = tmp_path / "yimg", tmp_path / "ylab"
    imgs.mkdir(), labels.mkdir()
    write_jpeg(imgs / "a.jpg")
    (labels / "a.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(data.AnnotationError, match=r"a.txt: line 1: expected 'class cx cy w h'"):
        data.read_yolo(str(imgs), str(labels))


def test_voc_hand_case_difficult_and_unknown_class(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "ImageSets/Main").mkdir(parents=True)
    write_jpeg(tmp_path / "JPEGImages/000001.jpg", 40, 60)
    objects = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, d, b in [("dog", 0, (1, 1, 10, 20)), ("cat", 1, (5, 5, 60, 40)),
                        ("unicorn", 0, (2, 2, 8, 8))])
    (tmp_path / "Annotations/000001.xml").write_text(
        f"<annotation><filename>000001.jpg</filename><size><width>60</width><height>40</height>"
        f"<depth>3</depth></size>{objects}</annotation>")
    (tmp_path / "ImageSets/Main/test.txt").write_text("000001\n000001\n")
    ds = data.read_voc(str(tmp_path), "test")
    assert len(ds) == 1 and ds.skipped.counts == {"unknown category": 1}
    ex = ds.examples[0]
    np.testing.assert_allclose(ex.boxes, [[0, 0, 10, 20], [4, 4, 60, 40]])
    assert ex.classes.tolist() == [data.VOC_CLASSES.index("dog"), data.VOC_CLASSES.index("cat")]
    assert ex.difficult.tolist() == [False, True]
    with pytest.raises(data.AnnotationError, match="image-set list not found"):
        data.read_voc(str(tmp_path), "trainval")


def png_claiming(width, height, payload=b""):
    """A PNG whose header claims width x height, with `payload` as its (zlib) data."""
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b""))


def test_images_that_do_not_decode_cleanly_are_skipped_by_name(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TFDET_CACHE", str(tmp_path / "cache"))
    from tfdet.data import image_check

    monkeypatch.setattr(image_check, "_CACHE", image_check.ImageCheckCache())
    images = tmp_path / "images"
    images.mkdir()
    write_jpeg(images / "good.jpg", 64, 96)
    jpeg = (images / "good.jpg").read_bytes()
    rng = np.random.default_rng(0)
    bad = {
        # cut in half with the end-of-image marker put back: decodes to grey without an error
        "cut_eoi.jpg": jpeg[: len(jpeg) // 2] + b"\xff\xd9",
        "scrambled.jpg": jpeg[:300] + rng.integers(0, 256, len(jpeg) - 302,
                                                   dtype=np.uint8).tobytes() + b"\xff\xd9",
        "bad_data.png": png_claiming(60, 40, b"\x00" * 17),  # too little pixel data
        "huge_header.png": png_claiming(30000, 30000, b"\x00" * 100),  # 900 MP
    }
    for name, content in bad.items():
        (images / name).write_bytes(content)
    import struct

    pixels = bytes(24 * 6)  # an 8x6 24-bit BMP, cut inside its pixel rows
    bmp = (b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54)
           + struct.pack("<IiiHHIIiiII", 40, 8, 6, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
           + pixels)
    bad["cut.bmp"] = bmp[:54 + len(pixels) // 2]
    gif = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00"
           b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
    bad["cut.gif"] = gif[:30]
    for name in ("cut.bmp", "cut.gif"):
        (images / name).write_bytes(bad[name])
    names = ["good.jpg"] + list(bad)
    imgs = [{"id": i + 1, "file_name": n} for i, n in enumerate(names)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [1, 1, 10, 10]}
            for i in range(len(names))]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": imgs, "annotations": anns,
                                "categories": [{"id": 1, "name": "a"}]}))
    ds = data.read_coco(str(path), str(images))
    assert [os.path.basename(e.path) for e in ds.examples] == ["good.jpg"]
    reasons = dict(ds.skipped.items)
    assert "corrupt image data" in reasons["cut_eoi.jpg (image id 2)"]
    assert "does not decode" in reasons["scrambled.jpg (image id 3)"]
    assert "does not decode" in reasons["bad_data.png (image id 4)"]
    assert "over the 100 MP limit" in reasons["huge_header.png (image id 5)"]
    assert "does not decode (Input size should match" in reasons["cut.bmp (image id 6)"]
    assert "does not decode (Invalid GIF data" in reasons["cut.gif (image id 7)"]
    assert ds.skipped.images == 6
    for name in bad:
        assert any(name in r.getMessage() for r in caplog.records), name
    # The results are cached by path, size and mtime: a second read decodes nothing.
    calls = []
    monkeypatch.setattr(image_check, "verify_image",
                        lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    assert len(data.read_coco(str(path), str(images))) == 1 and not calls
    # A changed file is checked again.
    (images / "cut_eoi.jpg").write_bytes(jpeg)
    monkeypatch.undo()
    monkeypatch.setenv("TFDET_CACHE", str(tmp_path / "cache"))
    assert len(data.read_coco(str(path), str(images))) == 2


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    from tfdet.data import image_check

    write_jpeg(tmp_path / "a.jpg", 40, 60)
    assert data.verify_image(str(tmp_path / "a.jpg")) == (40, 60)
    monkeypatch.setenv("TFDET_MAX_IMAGE_PIXELS", "2000")
    with pytest.raises(data.InvalidImage, match=r"60x40 = 0.0 MP is over the 0.002 MP limit"):
        image_check.probe_image(str(tmp_path / "a.jpg"))


def test_training_where_no_image_decodes_stops_with_an_error(coco_dir):
    path, images = coco_dir
    ds = data.read_coco(str(path), str(images))
    for ex in ds.examples:  # every file broken after the reader's check
        with open(ex.path, "wb") as f:
            f.write(b"\xff\xd8\xff garbage \xff\xd9")
    pipeline = data.input_pipeline(ds, Compose([ResizeSquare(32)]), 2, training=True, seed=0)
    pipeline.drop_monitor.patience = 20
    with pytest.raises(Exception, match=r"no image came through the input pipeline in 20 "
                                        r"elements in a row; the last that failed: .*\.(jpg|png)"):
        next(iter(pipeline))


def test_each_voc_root_bounds_its_own_files(tmp_path):
    def voc_root(root, files):
        for sub in ("Annotations", "JPEGImages"):
            (root / sub).mkdir(parents=True)
        for i, name in enumerate(files):
            write_jpeg(root / "JPEGImages" / f"own{i}.jpg")
            (root / "Annotations" / f"{i}.xml").write_text(
                f"<annotation><filename>{name}</filename><object><name>dog</name><bndbox>"
                f"<xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
                f"</annotation>")

    a, b = tmp_path / "disk1" / "VOC2007", tmp_path / "disk2" / "VOC2012"
    # Root a names a file of root b, through '..' and by absolute path: both must stay out,
    # though the two roots' common ancestor holds them.
    voc_root(a, ["own0.jpg", "../../../disk2/VOC2012/JPEGImages/own0.jpg",
                 str(b / "JPEGImages" / "own0.jpg")])
    voc_root(b, ["own0.jpg"])
    ds = data.read_voc([str(a), str(b)])
    kept = sorted(os.path.relpath(e.path, tmp_path) for e in ds.examples)
    assert kept == [os.path.join("disk1", "VOC2007", "JPEGImages", "own0.jpg"),
                    os.path.join("disk2", "VOC2012", "JPEGImages", "own0.jpg")]
    assert ds.skipped.counts["path escapes the image root"] == 2


def test_odd_coco_fields_are_skipped_counted_or_read(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_jpeg(images / "a.jpg", 40, 60)
    write_jpeg(images / "b.jpg", 40, 60)
    imgs = [{"id": 1, "file_name": "."}, {"id": 2, "file_name": "a\x00.jpg"},
            {"id": 3, "file_name": "a.jpg", "height": "40", "width": "60"},  # strings: read
            {"id": 4, "file_name": "b.jpg", "height": "forty", "width": 60}]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 10, 10]}
            for i in range(1, 5)]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": imgs, "annotations": anns,
                                "categories": [{"id": 1, "name": "a"}]}))
    ds = data.read_coco(str(path), str(images))
    assert [e.image_id for e in ds.examples] == [3]
    reasons = dict(ds.skipped.items)
    assert reasons[". (image id 1)"] == "not a file"
    assert reasons["a\x00.jpg (image id 2)"] == "file name contains a NUL byte"
    assert reasons["b.jpg (image id 4)"] == "height 'forty' is not a whole number"
    # Nesting deep enough to exhaust the JSON parser's recursion: one AnnotationError.
    path.write_text('{"images": ' + "[" * 100000 + "]" * 100000 + ', "categories": []}')
    with pytest.raises(data.AnnotationError, match="not valid JSON"):
        data.read_coco(str(path), str(images))


def test_csv_with_a_byte_order_mark(tmp_path):
    write_jpeg(tmp_path / "a.jpg", 40, 60)
    (tmp_path / "labels.csv").write_bytes(
        "\ufefffilename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,60,40,cat,1,2,30,20\n"
        .encode("utf-8"))
    ds = data.read_csv_labels(str(tmp_path / "labels.csv"), str(tmp_path))
    assert len(ds) == 1 and ds.class_names == ["cat"]
