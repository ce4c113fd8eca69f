"""Pascal VOC XML reader (VOCdevkit layouts and loose folders of XML files)."""
import glob
import os
import xml.etree.ElementTree as ET

from tfdet.data.example import SkipLog
from tfdet.data.validate import AnnotationError, RawImage, make_dataset

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor")


def _text(node, tag, path):
    child = node.find(tag)
    if child is None or child.text is None:
        raise AnnotationError(path, f"<{node.tag}> has no <{tag}>")
    return child.text.strip()


def _number(node, tag, path):
    value = _text(node, tag, path)
    try:
        return float(value)
    except ValueError:
        raise AnnotationError(path, f"<{tag}> is {value!r}, not a number") from None


def parse_voc_xml(path):
    """One VOC XML file -> RawImage. VOC pixel indices are 1-based and inclusive, so
    [xmin, ymin, xmax, ymax] becomes the continuous box [xmin - 1, ymin - 1, xmax, ymax]."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise AnnotationError(path, f"not valid XML ({err})") from None
    file_name = _text(root, "filename", path)
    size = root.find("size")
    height = width = None
    if size is not None:
        height, width = int(_number(size, "height", path)), int(_number(size, "width", path))
    raw = RawImage(file_name=file_name, height=height or None, width=width or None)
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        if box is None:
            raise AnnotationError(path, "<object> has no <bndbox>")
        x1, y1, x2, y2 = (_number(box, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        difficult = obj.find("difficult")
        raw.add([x1 - 1, y1 - 1, x2, y2], _text(obj, "name", path),
                difficult=difficult is not None and (difficult.text or "0").strip() == "1")
    return raw


def read_voc(roots, split=None, class_names=VOC_CLASSES, *, annotations_dir="Annotations",
             images_dir="JPEGImages", check_images=True, keep_empty=False):
    """Reads one or more VOC roots (e.g. VOC2007 and VOC2012 for '07+12').

    split: an ImageSets/Main/<split>.txt list (e.g. 'trainval', 'test'); None reads every XML
    in annotations_dir. class_names: the label set (VOC's 20 by default; None collects the
    names found in the files, sorted). Class ids of a VOC set are 1..K in results files.
    """
    if isinstance(roots, str):
        roots = [roots]
    raws = []
    for root in roots:
        ann_dir = os.path.join(root, annotations_dir)
        if split:
            list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
            if not os.path.isfile(list_file):
                raise AnnotationError(list_file, "image-set list not found")
            with open(list_file, encoding="utf-8") as f:
                stems = list(dict.fromkeys(line.split()[0] for line in f if line.strip()))
            xml_files = [os.path.join(ann_dir, s + ".xml") for s in stems]
        else:
            xml_files = sorted(glob.glob(os.path.join(ann_dir, "*.xml")))
            if not xml_files:
                raise AnnotationError(ann_dir, "no XML annotation files found")
        for xml_file in xml_files:
            if not os.path.isfile(xml_file):
                raise AnnotationError(xml_file, "annotation file listed in the split is missing")
            raw = parse_voc_xml(xml_file)
            # Each root bounds its own files: a <filename> may not leave its root's images.
            raw.image_root = os.path.abspath(os.path.join(root, images_dir))
            raws.append(raw)
    if class_names is None:
        class_names = sorted({label for raw in raws for label in raw.labels})
    names = list(class_names)
    log = SkipLog("voc:" + "+".join(os.path.basename(os.path.normpath(r)) for r in roots))
    return make_dataset(log.source, raws, None, names, names, log,
                        category_ids=range(1, len(names) + 1), check_images=check_images,
                        keep_empty=keep_empty)
