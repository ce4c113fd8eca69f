"""CSV box labels: `filename,width,height,class,xmin,ymin,xmax,ymax`, one row per box.

The format of the TF Object Detection API tutorials (and ../shared/data/raccoon/data).
Coordinates are read as continuous pixel coordinates, as written.
"""
import csv
import os

from tfdet.data.example import SkipLog
from tfdet.data.validate import AnnotationError, RawImage, make_dataset

COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


def read_csv_labels(csv_file, image_root, class_names=None, *, check_images=True,
                    keep_empty=False):
    """Reads a CSV label file; classes are `class_names` or the names found, sorted, with
    category ids 1..K in results files."""
    try:  # utf-8-sig: spreadsheet exports start with a byte-order mark
        f = open(csv_file, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(csv_file, "label file not found") from None
    with f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise AnnotationError(csv_file, f"missing columns {missing} (expected {COLUMNS})")
        by_file = {}
        for line, row in enumerate(reader, start=2):
            try:
                width, height = int(float(row["width"])), int(float(row["height"]))
                box = [float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                raise AnnotationError(csv_file, f"line {line}: a size or coordinate is not a "
                                                f"number: {row}") from None
            name = row["filename"]
            raw = by_file.setdefault(name, RawImage(file_name=name, height=height or None,
                                                    width=width or None))
            raw.add(box, row["class"])
    names = list(class_names) if class_names else sorted({l for r in by_file.values()
                                                          for l in r.labels})
    return make_dataset(os.path.basename(csv_file), list(by_file.values()), image_root, names,
                        names, SkipLog(os.path.basename(csv_file)),
                        category_ids=range(1, len(names) + 1), check_images=check_images,
                        keep_empty=keep_empty)
