"""The tf.data pipeline and transforms: exact geometry, determinism, TFRecord round trip."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import data
from tfdet.data import transforms as T


def make_image_dataset(tmp_path, sizes=((40, 60), (50, 30), (64, 64))):
    rng = np.random.default_rng(0)
    examples = []
    for i, (h, w) in enumerate(sizes):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        path = str(tmp_path / f"img{i}.png")  # PNG: lossless, so pixels can be compared
        tf.io.write_file(path, tf.io.encode_png(img))
        boxes = [[2, 3, 20, 25], [10, 5, w - 1, h - 2]][: 1 + i % 2]
        examples.append(data.make_example(i + 1, path, h, w, boxes, [i % 2] * len(boxes)))
    return data.DetectionDataset("toy", examples, ["a", "b"], [1, 2], data.SkipLog("toy"))


def sample(h=40, w=60):
    img = tf.reshape(tf.range(h * w * 3, dtype=tf.float32), [h, w, 3])
    return {"image": img, "boxes": tf.constant([[6.0, 4.0, 30.0, 20.0]]),
            "classes": tf.constant([0]), "is_crowd": tf.constant([False]),
            "difficult": tf.constant([False]), "scale": tf.ones([2])}


def test_resize_keep_aspect_hand_values():
    out = T.ResizeKeepAspect(20, 1333)(sample(), tf.constant([0, 0]))
    assert out["image"].shape == (20, 30, 3)
    np.testing.assert_allclose(out["boxes"].numpy(), [[3, 2, 15, 10]])
    np.testing.assert_allclose(out["scale"].numpy(), [0.5, 0.5])
    out = T.ResizeKeepAspect(40, 45)(sample(), tf.constant([0, 0]))  # the long side caps it
    assert out["image"].shape == (30, 45, 3)
    out = T.ResizeSquare(32)(sample(), tf.constant([0, 0]))
    np.testing.assert_allclose(out["scale"].numpy(), [32 / 40, 32 / 60])
    np.testing.assert_allclose(out["boxes"].numpy(), [[6 * 32 / 60, 4 * 32 / 40, 16, 16]],
                               rtol=1e-6)
    # Multi-scale: the short side is one of the choices, deterministic for the seed.
    sides = {int(min(T.ResizeKeepAspect((20, 30), 1333)(sample(), tf.constant([s, 1]))[
        "image"].shape[:2])) for s in range(12)}
    assert sides == {20, 30}


def test_flip_matches_numpy():
    s = sample()
    out = T.RandomHorizontalFlip(1.0)(s, tf.constant([1, 2]))
    np.testing.assert_array_equal(out["image"].numpy(), s["image"].numpy()[:, ::-1])
    np.testing.assert_allclose(out["boxes"].numpy(), [[60 - 30, 4, 60 - 6, 20]])
    same = T.RandomHorizontalFlip(0.0)(s, tf.constant([1, 2]))
    np.testing.assert_array_equal(same["image"].numpy(), s["image"].numpy())


def test_normalize():
    out = T.Normalize((10.0, 20.0, 30.0), (2.0, 4.0, 5.0))(sample(), tf.constant([0, 0]))
    np.testing.assert_allclose(out["image"].numpy()[0, 0], [(0 - 10) / 2, (1 - 20) / 4,
                                                             (2 - 30) / 5])


def test_batches_padding_and_counts(tmp_path):
    ds = make_image_dataset(tmp_path)
    batches = list(data.input_pipeline(ds, T.Compose([]), 2, training=False, max_boxes=5))
    assert [int(b["images"].shape[0]) for b in batches] == [2, 1]
    b = batches[0]
    assert b["images"].shape == (2, 64, 64, 3)  # max(40, 50) -> 64, max(60, 30) -> 64
    np.testing.assert_array_equal(b["num_boxes"].numpy(), [1, 2])
    np.testing.assert_array_equal(b["classes"].numpy()[0], [0, -1, -1, -1, -1])
    np.testing.assert_array_equal(b["image_size"].numpy(), [[40, 60], [50, 30]])
    np.testing.assert_array_equal(b["original_size"].numpy(), [[40, 60], [50, 30]])
    # Pixels are the file's, padding is zero.
    img0 = tf.io.decode_png(tf.io.read_file(ds.examples[0].path)).numpy()
    np.testing.assert_array_equal(b["images"].numpy()[0, :40, :60], img0)
    assert not b["images"].numpy()[0, 40:].any()
    fixed = next(iter(data.input_pipeline(ds, T.Compose([]), 2, training=False,
                                           pad_size=(96, 96))))
    assert fixed["images"].shape == (2, 96, 96, 3)
    few = next(iter(data.input_pipeline(ds, T.Compose([]), 3, training=False, max_boxes=1)))
    np.testing.assert_array_equal(few["num_boxes"].numpy(), [1, 1, 1])


def test_seeded_pipeline_is_deterministic(tmp_path):
    ds = make_image_dataset(tmp_path)
    transform = data.detection_transforms(True, short=(24, 32), max_long=64)

    def run(seed):
        pipe = data.input_pipeline(ds, transform, 1, training=True, seed=seed)
        return [(int(b["image_id"][0]), b["images"].numpy(), b["boxes"].numpy())
                for b in pipe.take(9)]

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b):
        assert x[0] == y[0]
        np.testing.assert_array_equal(x[1], y[1])
        np.testing.assert_array_equal(x[2], y[2])
    assert [x[0] for x in a] != [x[0] for x in c] or any(
        x[1].shape != y[1].shape or not np.array_equal(x[1], y[1]) for x, y in zip(a, c))


def test_tfrecord_round_trip(tmp_path):
    ds = make_image_dataset(tmp_path)
    ds.examples[0].masks = [[[2.0, 3.0, 20.0, 3.0, 20.0, 25.0]]]
    paths = data.write_tfrecords(ds, str(tmp_path / "out/toy"), num_shards=2)
    assert len(paths) == 2
    back = data.load_dataset(f"tfrecord:{tmp_path}/out/toy-*.tfrecord")
    assert back.class_names == ["a", "b"] and back.category_ids == [1, 2]
    by_id = {e.image_id: e for e in back.examples}
    for ex in ds.examples:
        got = by_id[ex.image_id]
        np.testing.assert_allclose(got.boxes, ex.boxes, rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(got.classes, ex.classes)
        assert (got.height, got.width) == (ex.height, ex.width)
    assert by_id[1].masks == ds.examples[0].masks
    # The pipeline gives the same samples from the shards as from the files.
    key = lambda b: int(b["image_id"][0])  # noqa: E731
    from_files = {key(b): b for b in data.input_pipeline(ds, T.Compose([]), 1, training=False)}
    from_records = {key(b): b for b in data.input_pipeline(back, T.Compose([]), 1,
                                                           training=False)}
    assert from_files.keys() == from_records.keys()
    for k, b in from_files.items():
        np.testing.assert_array_equal(b["images"].numpy(), from_records[k]["images"].numpy())
        np.testing.assert_allclose(b["boxes"].numpy(), from_records[k]["boxes"].numpy(),
                                   atol=1e-4)


def test_empty_dataset_error_names_it():
    empty = data.DetectionDataset("nothing", [], [], [], data.SkipLog("nothing"))
    with pytest.raises(ValueError, match="nothing: no usable images"):
        data.input_pipeline(empty, T.Compose([]), 1, training=False)


def test_tfrecord_shards_are_checked_like_the_other_readers(tmp_path):
    ds = make_image_dataset(tmp_path, sizes=((40, 60),) * 6)
    ex = ds.examples
    ex[1].classes[:] = 7                                   # class 7 of 2: box skipped
    ex[2] = data.make_example(3, ex[2].path, 40, 60, [[float("nan"), 1, 5, 5],
                                                       [10, 5, 59, 38]], [0, 1])
    # ^ the NaN box skipped, the other kept
    ex[3].boxes[:] = [30, 30, 10, 10]                      # inverted: no box left
    with open(ex[4].path, "wb") as f:                      # not an image
        f.write(b"definitely not an image")
    # Written as if there were 8 classes, then the sidecar says 2 (as a stale shard would).
    wide = data.DetectionDataset("toy", ex, [str(i) for i in range(8)], list(range(1, 9)),
                                 data.SkipLog("toy"))
    paths = data.write_tfrecords(wide, str(tmp_path / "out/bad"), num_shards=1)
    import json
    (tmp_path / "out/bad.classes.json").write_text(json.dumps(
        {"class_names": ["a", "b"], "category_ids": [1, 2]}))
    with tf.io.TFRecordWriter(paths[0] + ".extra") as w:
        w.write(b"not a tf.train.Example")
    import os
    with open(paths[0], "ab") as out, open(paths[0] + ".extra", "rb") as extra:
        out.write(extra.read())
    os.remove(paths[0] + ".extra")
    back = data.load_dataset(f"tfrecord:{tmp_path}/out/bad-*.tfrecord")
    assert [e.image_id for e in back.examples] == [1, 3, 6]
    c = back.skipped.counts
    assert c["class 7 outside 0..1"] == 2 and c["invalid box (not 4 finite numbers)"] == 1
    assert c["invalid box (x2 <= x1 or y2 <= y1)"] == 2 and c["no boxes"] == 2  # 2 boxes
    assert any(r.startswith("not an image") for r in c) and any(
        r.startswith("not a detection tf.train.Example") for r in c)
    assert back.skipped.images == 2
    # The pipeline reads the kept records only, with the same box rules.
    batches = list(data.input_pipeline(back, T.Compose([]), 1, training=False))
    got = {int(b["image_id"][0]): b for b in batches}
    assert sorted(got) == [1, 3, 6]
    assert int(got[3]["num_boxes"][0]) == 1  # the NaN box dropped, the other kept
    np.testing.assert_allclose(got[3]["boxes"][0, 0], back.examples[1].boxes[0], atol=1e-4)


def test_box_slots_default_to_the_data_and_a_smaller_cap_says_what_it_cuts(tmp_path, caplog):
    ds = make_image_dataset(tmp_path, sizes=((64, 64),))
    many = [[i % 60, i // 60, i % 60 + 4, i // 60 + 4] for i in range(130)]
    ds.examples[0] = data.make_example(1, ds.examples[0].path, 64, 64, many, [0] * 130)
    batch = next(iter(data.input_pipeline(ds, T.Compose([]), 1, training=False)))
    assert int(batch["num_boxes"][0]) == 130 and batch["boxes"].shape[1] == 136
    batch = next(iter(data.input_pipeline(ds, T.Compose([]), 1, training=False,
                                          max_boxes=100)))
    assert int(batch["num_boxes"][0]) == 100
    assert any("1 images have more than max_boxes = 100 boxes; 30 boxes will be cut"
               in r.getMessage() for r in caplog.records)


RELEASE_AT_EXIT = """
import sys, time
from tfdet.data import release_iterator

class Slow:
    def __del__(self):  # stands in for a tf.data iterator that takes a while to go
        time.sleep(1.0)
        with open(sys.argv[1], "w") as f:
            f.write("released")

holder = [Slow()]
release_iterator(holder)
"""


def test_an_iterator_released_just_before_exit_is_released_before_the_process_ends(tmp_path):
    """release_iterator's thread finishes before the interpreter does: as a daemon it was
    stopped mid-release at exit, which inside TensorFlow's iterator destructor aborted a
    finished training process (the two-worker test's worker exited with -6)."""
    import subprocess
    import sys
    marker = tmp_path / "released"
    run = subprocess.run([sys.executable, "-c", RELEASE_AT_EXIT, str(marker)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert marker.read_text() == "released"
