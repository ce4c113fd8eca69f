"""YOLO txt labels: one `class cx cy w h` line per box, normalised to the image size."""
import glob
import os

from tfdet.data.example import SkipLog
from tfdet.data.image_check import InvalidImage, check_image
from tfdet.data.validate import AnnotationError, RawImage, make_dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def read_names(names_file):
    with open(names_file, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_yolo(image_dir, label_dir, names=None, *, keep_empty=False):
    """Reads images and their same-stem .txt labels. An image without a label file has no
    boxes (skipped unless keep_empty). names: a list, a names file (one class per line, as
    coco128/labels/classes.txt), or None for the ids found ('0', '1', ...)."""
    if isinstance(names, str):
        names = read_names(names)
    images = sorted(p for p in glob.glob(os.path.join(image_dir, "*"))
                    if p.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise AnnotationError(image_dir, "no images found")
    log = SkipLog(f"yolo:{os.path.basename(os.path.normpath(label_dir))}")
    raws = []
    for image_path in images:
        stem = os.path.splitext(os.path.basename(image_path))[0]
        raw = RawImage(file_name=os.path.basename(image_path))
        label_file = os.path.join(label_dir, stem + ".txt")
        if os.path.isfile(label_file):
            try:
                height, width = check_image(image_path)
            except InvalidImage as err:
                log.skip(image_path, str(err), image=True)
                continue
            raw.height, raw.width = height, width
            with open(label_file, encoding="utf-8") as f:
                for line_no, line in enumerate(f, start=1):
                    parts = line.split()
                    if not parts:
                        continue
                    try:
                        cls, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
                        if len(parts) != 5:
                            raise ValueError
                    except ValueError:
                        raise AnnotationError(label_file, f"line {line_no}: expected "
                                                          f"'class cx cy w h', got {line.strip()!r}"
                                              ) from None
                    raw.add([(cx - w / 2) * width, (cy - h / 2) * height,
                             (cx + w / 2) * width, (cy + h / 2) * height], cls)
        raws.append(raw)
    if names is None:
        found = sorted({label for raw in raws for label in raw.labels})
        names = [str(i) for i in range(found[-1] + 1)] if found else []
    # Labelled images were checked above; build_examples checks only the rest.
    return make_dataset(log.source, raws, image_dir, names, list(range(len(names))), log,
                        check_images=False, keep_empty=keep_empty)
