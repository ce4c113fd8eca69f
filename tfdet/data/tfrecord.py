"""TFRecord shards in the TF Object Detection API layout, written from any reader.

Keys: image/encoded, image/format, image/filename, image/source_id, image/height,
image/width, image/object/bbox/{xmin,ymin,xmax,ymax} (normalised to the image size),
image/object/class/label (contiguous class index), image/object/class/text,
image/object/is_crowd, image/object/difficult, and image/object/segmentation (one JSON string
per object: COCO polygons or RLE; empty when the object has none). A sidecar
`<prefix>.classes.json` keeps the class names and the data set's category ids.
"""
import glob
import json
import os

import numpy as np
import tensorflow as tf

from tfdet.data.example import DetectionDataset, SkipLog, make_example
from tfdet.data.validate import AnnotationError


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def serialize_example(example, class_names):
    """One Example (its image file read as is) -> serialized tf.train.Example bytes."""
    with open(example.path, "rb") as f:
        encoded = f.read()
    h, w = float(example.height), float(example.width)
    boxes = example.boxes
    masks = example.masks or [None] * example.num_boxes
    fmt = b"png" if encoded[:4] == b"\x89PNG" else b"jpeg"
    feature = {
        "image/encoded": _bytes([encoded]),
        "image/format": _bytes([fmt]),
        "image/filename": _bytes([os.path.basename(example.path).encode()]),
        "image/source_id": _bytes([str(example.image_id).encode()]),
        "image/height": _ints([example.height]),
        "image/width": _ints([example.width]),
        "image/object/bbox/xmin": _floats((boxes[:, 0] / w).tolist()),
        "image/object/bbox/ymin": _floats((boxes[:, 1] / h).tolist()),
        "image/object/bbox/xmax": _floats((boxes[:, 2] / w).tolist()),
        "image/object/bbox/ymax": _floats((boxes[:, 3] / h).tolist()),
        "image/object/class/label": _ints(example.classes.tolist()),
        "image/object/class/text": _bytes([class_names[c].encode() for c in example.classes]),
        "image/object/is_crowd": _ints(example.is_crowd.astype(int).tolist()),
        "image/object/difficult": _ints(example.difficult.astype(int).tolist()),
        "image/object/segmentation": _bytes(
            [b"" if m is None else json.dumps(m).encode() for m in masks]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecords(dataset: DetectionDataset, output_prefix, num_shards=1):
    """Writes <prefix>-0000i-of-0000n.tfrecord shards and <prefix>.classes.json; -> paths."""
    os.makedirs(os.path.dirname(os.path.abspath(output_prefix)), exist_ok=True)
    paths = [f"{output_prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    try:
        for i, example in enumerate(dataset.examples):
            writers[i % num_shards].write(serialize_example(example, dataset.class_names))
    finally:
        for writer in writers:
            writer.close()
    with open(output_prefix + ".classes.json", "w", encoding="utf-8") as f:
        json.dump({"class_names": dataset.class_names,
                   "category_ids": [int(c) for c in dataset.category_ids]}, f)
    return paths


_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/source_id": tf.io.FixedLenFeature([], tf.string, default_value="0"),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/object/is_crowd": tf.io.VarLenFeature(tf.int64),
    "image/object/difficult": tf.io.VarLenFeature(tf.int64),
    "image/object/segmentation": tf.io.VarLenFeature(tf.string),
}


def parse_record(serialized, num_classes=None):
    """Serialized tf.train.Example -> the pipeline's raw element (encoded bytes, pixel boxes).

    With num_classes, boxes that read_tfrecord_annotations skips are dropped the same way
    (NaN, inverted, outside the image, class outside 0..num_classes-1) and the rest clipped."""
    f = tf.io.parse_single_example(serialized, _FEATURES)
    dense = {k: tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v
             for k, v in f.items()}
    h = tf.cast(dense["image/height"], tf.float32)
    w = tf.cast(dense["image/width"], tf.float32)
    boxes = tf.stack([dense["image/object/bbox/xmin"] * w, dense["image/object/bbox/ymin"] * h,
                      dense["image/object/bbox/xmax"] * w, dense["image/object/bbox/ymax"] * h],
                     axis=-1)
    n = tf.shape(boxes)[0]

    def flag(key):
        v = dense[key]
        return tf.cond(tf.size(v) == n, lambda: v > 0, lambda: tf.zeros([n], tf.bool))

    element = {
        "encoded": dense["image/encoded"],
        "image_id": tf.strings.to_number(dense["image/source_id"], tf.int64),
        "boxes": boxes,
        "classes": tf.cast(dense["image/object/class/label"], tf.int32),
        "is_crowd": flag("image/object/is_crowd"),
        "difficult": flag("image/object/difficult"),
        "segmentation": tf.cond(
            tf.size(dense["image/object/segmentation"]) == n,
            lambda: dense["image/object/segmentation"], lambda: tf.fill([n], "")),
    }
    if num_classes is None:
        return element
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    classes = element["classes"]
    keep = (tf.reduce_all(tf.math.is_finite(boxes), -1) & (x2 > x1) & (y2 > y1) & (x2 > 0)
            & (y2 > 0) & (x1 < w) & (y1 < h) & (classes >= 0) & (classes < num_classes))
    for key in ("boxes", "classes", "is_crowd", "difficult", "segmentation"):
        element[key] = tf.boolean_mask(element[key], keep)
    element["boxes"] = tf.clip_by_value(element["boxes"], 0.0, tf.stack([w, h, w, h]))
    return element


def shard_files(pattern):
    """(sorted shard paths matching a glob, the path of their classes.json sidecar)."""
    files = sorted(glob.glob(pattern))
    if not files:
        raise AnnotationError(pattern, "no TFRecord files match")
    prefix = files[0].rsplit("-", 3)[0]
    return files, prefix + ".classes.json"


def read_tfrecord_annotations(pattern, *, check_images=True, keep_empty=False):
    """The annotations of TFRecord shards (no image bytes kept) as a DetectionDataset.

    Every record gets the checks of the other readers, skipped and counted with a warning
    naming the shard and record: records that are not tf.train.Examples, ids that are not
    integers or repeat, images that do not decode cleanly (decoded once, cached per shard
    state) or whose size differs from image/height and image/width; boxes that are NaN,
    inverted or outside the image and classes outside 0..K-1 (boxes partly outside are
    clipped); images left without boxes unless keep_empty. The input pipeline reads only the
    records kept here and applies the same box rules (see parse_record).
    """
    from google.protobuf.message import DecodeError

    from tfdet.data.image_check import InvalidImage, check_record, save_check_cache
    from tfdet.data.validate import keep_valid_boxes

    files, class_file = shard_files(pattern)
    if not os.path.isfile(class_file):
        raise AnnotationError(class_file, "class file written beside the shards is missing")
    with open(class_file, encoding="utf-8") as f:
        classes = json.load(f)
    num_classes = len(classes["class_names"])
    log = SkipLog(os.path.basename(pattern))
    examples, seen = [], set()
    for shard in files:
        records = iter(tf.data.TFRecordDataset(shard))
        index = -1
        while True:
            index += 1
            try:
                record = next(records)
            except StopIteration:
                break
            except tf.errors.DataLossError as err:
                raise AnnotationError(shard, f"record {index} is damaged ({err.message})") from None
            where = f"{os.path.basename(shard)} record {index}"
            try:
                ex = tf.train.Example.FromString(record.numpy()).features.feature
                source_id = ex["image/source_id"].bytes_list.value[0].decode()
                image_id = int(source_id)
                h = ex["image/height"].int64_list.value[0]
                w = ex["image/width"].int64_list.value[0]
                encoded = ex["image/encoded"].bytes_list.value[0]
            except (DecodeError, IndexError, ValueError, UnicodeDecodeError) as err:
                log.skip(where, f"not a detection tf.train.Example ({type(err).__name__})",
                         image=True)
                continue
            where = f"{where} (image id {image_id})"
            if image_id in seen:
                log.skip(where, "duplicate image id", image=True)
                continue
            seen.add(image_id)
            if check_images:
                try:
                    size = check_record(shard, index, encoded)
                except InvalidImage as err:
                    log.skip(where, str(err), image=True)
                    continue
                if size != (h, w):
                    log.skip(where, f"image/height x width {h}x{w} differs from the image's "
                                    f"{size[0]}x{size[1]}", image=True)
                    continue
            coords = [np.asarray(ex[f"image/object/bbox/{k}"].float_list.value, np.float64)
                      for k in ("xmin", "ymin", "xmax", "ymax")]
            labels = list(ex["image/object/class/label"].int64_list.value)
            n = len(labels)
            if any(len(c) != n for c in coords):
                log.skip(where, "box coordinate lists and labels differ in length", image=True)
                continue
            boxes = np.stack(coords, 1).reshape(-1, 4) * np.array([w, h, w, h])
            segmentations = list(ex["image/object/segmentation"].bytes_list.value)
            flags = {key: list(ex[f"image/object/{key}"].int64_list.value)
                     for key in ("is_crowd", "difficult")}
            keep = keep_valid_boxes(
                boxes, labels, h, w,
                lambda label: None if 0 <= label < num_classes
                else f"class {label} outside 0..{num_classes - 1}",
                log, lambda i: f"{where} box {i}")  # noqa: B023 - used at once
            if not keep and not keep_empty:
                log.skip(where, "no boxes")
                continue
            masks = [json.loads(segmentations[i]) if len(segmentations) == n and
                     segmentations[i] else None for i in keep]
            pick = lambda values: [values[i] for i in keep] if len(values) == n else None  # noqa: E731
            examples.append(make_example(
                image_id, None, h, w,
                np.clip(boxes[keep], 0, [w, h, w, h]).astype(np.float32),
                [labels[i] for i in keep], pick(flags["is_crowd"]), pick(flags["difficult"]),
                masks if any(m is not None for m in masks) else None))
    save_check_cache()
    return DetectionDataset(name=os.path.basename(pattern), examples=examples,
                            class_names=classes["class_names"],
                            category_ids=classes["category_ids"],
                            skipped=log, tfrecord_pattern=pattern)
