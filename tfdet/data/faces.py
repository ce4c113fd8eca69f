"""Face data sets: WIDER FACE box lists, FDDB ellipse folds and dlib's imglab XML. One class,
"face".

WIDER FACE (`wider_face_split/wider_face_{train,val}_bbx_gt.txt`, images under
`WIDER_{train,val}/images`): per image, its path, the face count N, then N lines
`x1 y1 w h blur expression illumination invalid occlusion pose` (an image without faces has
N = 0 and one line of zeros). Boxes become [x1, y1, x1 + w, y1 + h]; the six flags stay with
each box (Example.attributes). Boxes of zero width or height (the file has some) are skipped
and counted, as every reader's invalid boxes are.

FDDB (`FDDB-folds/FDDB-fold-NN-ellipseList.txt`, images under `originalPics/`, or the root
itself without it): per image, its path without extension (`2002/08/11/big/img_591`, a .jpg),
the face count, then one ellipse per face `major_radius minor_radius angle centre_x centre_y
1` (angle in radians, of the major axis from the x axis). A face's box is its ellipse's
bounding box: half-width sqrt((a cos t)^2 + (b sin t)^2), half-height sqrt((a sin t)^2 +
(b cos t)^2); parts outside the image are clipped as every reader's.

dlib XML (`imglab`, ../shared/data/faces_dlib): `<image file=...>` elements holding
`<box top= left= width= height= [ignore='1']/>`; dlib's rectangles are inclusive pixel
indices, so a box is [left, top, left + width, top + height]; ignored boxes are `difficult`
(the VOC evaluator leaves them out, as dlib's test does).
"""
import math
import os
import xml.etree.ElementTree as ET

from tfdet.data.example import SkipLog
from tfdet.data.validate import AnnotationError, RawImage, make_dataset

FACE = ["face"]
WIDER_FLAGS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


def _face_lists(path, missing, rows_when_empty):
    """The blocks of a WIDER FACE / FDDB list: an image path line, a face count line, then the
    faces' lines (at least `rows_when_empty`: WIDER writes a line of zeros for an image
    without faces). Yields (name, count, face lines, line number of the first face line)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except FileNotFoundError:
        raise AnnotationError(path, missing) from None
    except UnicodeDecodeError as err:
        raise AnnotationError(path, f"not a text file ({err})") from None
    while lines and not lines[-1]:
        lines.pop()
    i = 0
    while i < len(lines):
        name = lines[i]
        if not name or " " in name:
            raise AnnotationError(path, f"line {i + 1}: expected an image path, got {name!r}")
        try:
            count = int(lines[i + 1])
        except (IndexError, ValueError):
            raise AnnotationError(path, f"line {i + 2}: expected the face count of {name}, "
                                        f"got {lines[i + 1] if i + 1 < len(lines) else 'EOF'!r}"
                                  ) from None
        if count < 0:
            raise AnnotationError(path, f"line {i + 2}: negative face count {count}")
        block = max(count, rows_when_empty)
        rows = lines[i + 2:i + 2 + block]
        if len(rows) < block:
            raise AnnotationError(path, f"{name}: {count} faces announced, the file ends first")
        yield name, count, rows[:count], i + 3
        i += 2 + block


def parse_wider_face_list(path):
    """A WIDER FACE bbx_gt file -> [RawImage] (file names relative to the images folder)."""
    raws = []
    for name, _, rows, first in _face_lists(path, "box list not found", 1):
        raw = RawImage(file_name=name)
        for j, row in enumerate(rows):
            fields = row.split()
            try:
                values = [int(float(v)) for v in fields[:10]]
            except ValueError:
                values = []
            if len(fields) < 10 or len(values) < 10:
                raise AnnotationError(path, f"line {first + j}: expected 10 numbers (x y w h "
                                            f"and six flags), got {row!r}")
            x, y, w, h = (float(v) for v in fields[:4])
            raw.add([x, y, x + w, y + h], "face", **dict(zip(WIDER_FLAGS, values[4:10])))
        raws.append(raw)
    return raws


def read_wider_face(root, split="train", *, check_images=True, keep_empty=False):
    """WIDER FACE under `root` (wider_face_split/ and WIDER_<split>/images/): split 'train'
    or 'val'. Image ids count from 1 in the list's order."""
    if split not in ("train", "val"):
        raise ValueError(f"WIDER FACE split must be 'train' or 'val' (the test split has no "
                         f"boxes), got {split!r}")
    listing = os.path.join(root, "wider_face_split", f"wider_face_{split}_bbx_gt.txt")
    raws = parse_wider_face_list(listing)
    return make_dataset(f"widerface:{split}", raws, os.path.join(root, f"WIDER_{split}",
                                                                  "images"),
                        FACE, FACE, SkipLog(f"widerface:{split}"), category_ids=[1],
                        check_images=check_images, keep_empty=keep_empty)


def ellipse_box(major, minor, angle, cx, cy):
    """The bounding box [x1, y1, x2, y2] of an ellipse (semi-axes major / minor, the major
    axis at `angle` radians from the x axis, centred at (cx, cy))."""
    c, s = math.cos(angle), math.sin(angle)
    half_w = math.hypot(major * c, minor * s)
    half_h = math.hypot(major * s, minor * c)
    return [cx - half_w, cy - half_h, cx + half_w, cy + half_h]


def parse_fddb_fold(path):
    """An FDDB ellipse list -> [RawImage] (file names `<path>.jpg`, boxes from the
    ellipses)."""
    raws = []
    for name, _, rows, first in _face_lists(path, "FDDB fold not found", 0):
        raw = RawImage(file_name=name + ".jpg")
        for j, row in enumerate(rows):
            try:
                values = [float(v) for v in row.split()[:5]]
            except ValueError:
                values = []
            if len(values) < 5 or not all(math.isfinite(v) for v in values):
                raise AnnotationError(path, f"line {first + j}: expected an ellipse (major "
                                            f"minor angle x y 1), got {row!r}")
            raw.add(ellipse_box(*values), "face")
        raws.append(raw)
    return raws


def _fddb_folds(spec, folder):
    """Fold numbers from '3', '1-8' or '9,10'; None: every ellipse list in the folder."""
    if spec is None:
        names = sorted(n for n in os.listdir(folder)
                       if n.startswith("FDDB-fold-") and n.endswith("-ellipseList.txt"))
        if not names:
            raise AnnotationError(folder, "no FDDB-fold-NN-ellipseList.txt files")
        return [os.path.join(folder, n) for n in names]
    numbers = []
    try:
        for part in spec.split(","):
            low, _, high = part.partition("-")
            numbers += range(int(low), int(high or low) + 1)
    except ValueError:
        raise ValueError(f"FDDB folds must be like '3', '1-8' or '9,10', got {spec!r}") from None
    if not numbers or any(not 1 <= n <= 10 for n in numbers):
        raise ValueError(f"FDDB folds are 1..10, got {spec!r}")
    return [os.path.join(folder, f"FDDB-fold-{n:02d}-ellipseList.txt") for n in numbers]


def read_fddb(root, folds=None, *, check_images=True, keep_empty=False):
    """FDDB under `root` (FDDB-folds/ and originalPics/, or the images at the root): the
    folds' images in order ('1-10' by default), image ids from 1."""
    folder = os.path.join(root, "FDDB-folds")
    if not os.path.isdir(folder):
        raise AnnotationError(folder, "FDDB-folds folder not found")
    raws = []
    for path in _fddb_folds(folds, folder):
        raws += parse_fddb_fold(path)
    images = os.path.join(root, "originalPics")
    log = SkipLog(f"fddb:{folds or 'all'}")
    return make_dataset(log.source, raws, images if os.path.isdir(images) else root, FACE,
                        FACE, log, category_ids=[1], check_images=check_images,
                        keep_empty=keep_empty)


def _int_attribute(node, name, path):
    value = node.get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AnnotationError(path, f"<{node.tag}> attribute {name}={value!r} is not an "
                                    f"integer") from None


def read_dlib_xml(xml_file, image_root=None, *, check_images=True, keep_empty=False):
    """dlib imglab XML -> DetectionDataset of faces; images relative to image_root (the XML's
    folder by default)."""
    try:
        root = ET.parse(xml_file).getroot()
    except FileNotFoundError:
        raise AnnotationError(xml_file, "annotation file not found") from None
    except ET.ParseError as err:
        raise AnnotationError(xml_file, f"not valid XML ({err})") from None
    images = root.find("images")
    if images is None:
        raise AnnotationError(xml_file, "no <images> element (not a dlib imglab file)")
    raws = []
    for node in images.findall("image"):
        name = node.get("file")
        if not name:
            raise AnnotationError(xml_file, "an <image> has no file attribute")
        raw = RawImage(file_name=name)
        for box in node.findall("box"):
            top, left, width, height = (_int_attribute(box, k, xml_file)
                                        for k in ("top", "left", "width", "height"))
            raw.add([left, top, left + width, top + height], "face",
                    difficult=box.get("ignore", "0").strip() == "1")
        raws.append(raw)
    folder = image_root or os.path.dirname(os.path.abspath(xml_file))
    log = SkipLog(f"dlib:{os.path.basename(xml_file)}")
    return make_dataset(log.source, raws, folder, FACE, FACE, log, category_ids=[1],
                        check_images=check_images, keep_empty=keep_empty)
