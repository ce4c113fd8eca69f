"""Data-set spec strings, as the scripts' --train_data / --eval_data / --data flags take them.

  sample[:SPLIT]                        the built-in generated data (train or val)
  coco:ANNOTATIONS.json[:IMAGE_DIR]     COCO JSON; images beside the file by default
  voc:ROOT[+ROOT2...][:SPLIT]           Pascal VOC roots (VOC2007+VOC2012 for 07+12)
  csv:LABELS.csv:IMAGE_DIR              filename,width,height,class,xmin,ymin,xmax,ymax rows
  yolo:IMAGE_DIR:LABEL_DIR[:NAMES]      YOLO txt labels, optional class-names file
  tfrecord:GLOB                         shards written by scripts/convert_dataset.py
  widerface:ROOT[:SPLIT]                WIDER FACE (train by default, or val)
  fddb:ROOT[:FOLDS]                     FDDB ellipse folds (all 10 by default; '1-8', '9,10')
  dlib:FACES.xml[:IMAGE_DIR]            dlib imglab XML faces; images beside the file by default
"""
from tfdet.data.coco import read_coco
from tfdet.data.csv_labels import read_csv_labels
from tfdet.data.faces import read_dlib_xml, read_fddb, read_wider_face
from tfdet.data.sample import load_sample_dataset
from tfdet.data.tfrecord import read_tfrecord_annotations
from tfdet.data.voc import read_voc
from tfdet.data.yolo import read_yolo

FORMATS = ("sample", "coco", "voc", "csv", "yolo", "tfrecord", "widerface", "fddb", "dlib")


def load_dataset(spec, *, keep_empty=False):
    """A DetectionDataset from a spec string (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    if kind == "sample":
        return load_sample_dataset(parts[0] if parts else "train")
    if kind == "coco" and 1 <= len(parts) <= 2:
        return read_coco(parts[0], parts[1] if len(parts) == 2 else None, keep_empty=keep_empty)
    if kind == "voc" and 1 <= len(parts) <= 2:
        return read_voc(parts[0].split("+"), parts[1] if len(parts) == 2 else None,
                        keep_empty=keep_empty)
    if kind == "csv" and len(parts) == 2:
        return read_csv_labels(parts[0], parts[1], keep_empty=keep_empty)
    if kind == "yolo" and 2 <= len(parts) <= 3:
        return read_yolo(parts[0], parts[1], parts[2] if len(parts) == 3 else None,
                         keep_empty=keep_empty)
    if kind == "tfrecord" and len(parts) == 1:
        return read_tfrecord_annotations(parts[0], keep_empty=keep_empty)
    if kind == "widerface" and 1 <= len(parts) <= 2:
        return read_wider_face(parts[0], parts[1] if len(parts) == 2 else "train",
                               keep_empty=keep_empty)
    if kind == "fddb" and 1 <= len(parts) <= 2:
        return read_fddb(parts[0], parts[1] if len(parts) == 2 else None,
                         keep_empty=keep_empty)
    if kind == "dlib" and 1 <= len(parts) <= 2:
        return read_dlib_xml(parts[0], parts[1] if len(parts) == 2 else None,
                             keep_empty=keep_empty)
    raise ValueError(
        f"bad data spec {spec!r}: expected one of sample[:SPLIT], coco:ANN.json[:IMAGE_DIR], "
        f"voc:ROOT[:SPLIT], csv:LABELS.csv:IMAGE_DIR, yolo:IMAGE_DIR:LABEL_DIR[:NAMES], "
        f"tfrecord:GLOB, widerface:ROOT[:SPLIT], fddb:ROOT[:FOLDS], dlib:FACES.xml[:IMAGE_DIR]")
