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


def parse_record(serialized):
    """Serialized tf.train.Example -> the pipeline's raw element (encoded bytes, pixel boxes)."""
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

    return {
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


def shard_files(pattern):
    """(sorted shard paths matching a glob, the path of their classes.json sidecar)."""
    files = sorted(glob.glob(pattern))
    if not files:
        raise AnnotationError(pattern, "no TFRecord files match")
    prefix = files[0].rsplit("-", 3)[0]
    return files, prefix + ".classes.json"


def read_tfrecord_annotations(pattern):
    """The annotations of TFRecord shards (no image bytes kept) as a DetectionDataset.

    Used for evaluation ground truth; the pipeline reads the images from the shards.
    """
    files, class_file = shard_files(pattern)
    if not os.path.isfile(class_file):
        raise AnnotationError(class_file, "class file written beside the shards is missing")
    with open(class_file, encoding="utf-8") as f:
        classes = json.load(f)
    examples = []
    for record in tf.data.TFRecordDataset(files):
        ex = tf.train.Example.FromString(record.numpy()).features.feature
        h, w = ex["image/height"].int64_list.value[0], ex["image/width"].int64_list.value[0]
        coords = [np.asarray(ex[f"image/object/bbox/{k}"].float_list.value, np.float32)
                  for k in ("xmin", "ymin", "xmax", "ymax")]
        boxes = np.stack(coords, 1) * np.array([w, h, w, h], np.float32)
        masks = [json.loads(s) if s else None for s in ex["image/object/segmentation"].bytes_list.value]
        examples.append(make_example(
            int(ex["image/source_id"].bytes_list.value[0]), None, h, w, boxes,
            ex["image/object/class/label"].int64_list.value,
            ex["image/object/is_crowd"].int64_list.value,
            ex["image/object/difficult"].int64_list.value,
            masks if any(m is not None for m in masks) else None))
    return DetectionDataset(name=os.path.basename(pattern), examples=examples,
                            class_names=classes["class_names"],
                            category_ids=classes["category_ids"],
                            skipped=SkipLog(pattern), tfrecord_pattern=pattern)
