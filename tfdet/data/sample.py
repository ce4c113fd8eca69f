"""The built-in sample data set: synthetic scenes generated deterministically on first use.

Scenes of rectangles, ellipses and triangles (3 classes) over textured backgrounds, written as
JPEGs plus COCO JSON (boxes and polygon masks) under a cache folder, so every script runs on a
fresh machine without a data set. The same seed gives the same files byte for byte.
"""
import json
import os
import shutil
import tempfile

import numpy as np

CLASS_NAMES = ("rectangle", "ellipse", "triangle")
CATEGORY_IDS = (1, 2, 3)
VERSION = 2
# split -> (seed offset, number of images). v2 has 480 training images (v1: 96, the same first
# 96): the quickstart's model overfitted 96 (val AP50 0.66 after 600 steps at 160 px, 0.93
# with 480; BENCHMARKS.md).
SPLITS = {"train": (0, 480), "val": (1, 32)}


def default_root():
    """$TFDET_CACHE/sample-v<VERSION>, or ~/.cache/tfdet/sample-v<VERSION>."""
    cache = os.environ.get("TFDET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "tfdet")
    return os.path.join(cache, f"sample-v{VERSION}")


def _background(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / (h + w) + 0.5
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    img += rng.normal(0, 12, (h, w, 3))
    return img


def _shape_mask_and_polygon(kind, h, w, x1, y1, x2, y2, rng):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    if kind == 0:
        mask = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
        poly = [x1, y1, x2, y1, x2, y2, x1, y2]
    elif kind == 1:
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        poly = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], 1).ravel().tolist()
    else:
        apex = rng.uniform(x1, x2)
        pts = np.array([[apex, y1], [x2, y2], [x1, y2]], np.float32)
        mask = np.ones((h, w), bool)
        for i in range(3):
            (ax, ay), (bx, by) = pts[i], pts[(i + 1) % 3]
            mask &= (bx - ax) * (yy - ay) - (by - ay) * (xx - ax) >= 0
        poly = pts.ravel().tolist()
    return mask, [float(round(v, 2)) for v in poly]


def _scene(rng, image_id):
    h, w = int(rng.integers(160, 257)), int(rng.integers(160, 257))
    img = _background(rng, h, w)
    boxes = []
    annotations = []
    for _ in range(int(rng.integers(1, 5))):
        for _attempt in range(20):
            bw, bh = rng.uniform(28, min(w, h) * 0.6, 2)
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            box = np.array([x1, y1, x1 + bw, y1 + bh])
            if all(_iou(box, b) < 0.05 for b in boxes):
                break
        else:
            continue
        boxes.append(box)
        kind = int(rng.integers(0, 3))
        mask, poly = _shape_mask_and_polygon(kind, h, w, *box, rng)
        color = rng.uniform(0, 255, 3)
        # Keep the object distinct from the local background.
        if np.abs(color - img[mask].mean(0)).sum() < 120:
            color = 255 - color
        img[mask] = color + rng.normal(0, 6, (int(mask.sum()), 3))
        x1, y1, x2, y2 = (float(round(v, 2)) for v in box)
        annotations.append({"image_id": image_id, "category_id": CATEGORY_IDS[kind],
                            "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                            "area": float(mask.sum()), "iscrowd": 0,
                            "segmentation": [poly]})
    return np.clip(img, 0, 255).astype(np.uint8), annotations


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def generate(root, split="train", seed=0):
    """Writes <root>/<split>/*.jpg and <root>/annotations/instances_<split>.json."""
    import tensorflow as tf  # only for JPEG encoding

    offset, count = SPLITS[split]
    rng = np.random.default_rng(seed * 1000 + offset)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=root)
    images, annotations = [], []
    for i in range(count):
        image_id = i + 1
        img, anns = _scene(rng, image_id)
        name = f"{split}_{image_id:04d}.jpg"
        tf.io.write_file(os.path.join(tmp, name), tf.io.encode_jpeg(img, quality=92))
        images.append({"id": image_id, "file_name": name, "height": img.shape[0],
                       "width": img.shape[1]})
        annotations.extend(anns)
    for n, ann in enumerate(annotations, start=1):
        ann["id"] = n
    coco = {"info": {"description": f"tfdet sample data v{VERSION}, split {split}"},
            "images": images, "annotations": annotations,
            "categories": [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, CLASS_NAMES)]}
    split_dir = os.path.join(root, split)
    if os.path.isdir(split_dir):
        shutil.rmtree(split_dir)
    os.replace(tmp, split_dir)
    ann_file = os.path.join(root, "annotations", f"instances_{split}.json")
    with open(ann_file + ".tmp", "w", encoding="utf-8") as f:
        json.dump(coco, f)
    os.replace(ann_file + ".tmp", ann_file)  # written last: its presence marks a complete split
    return ann_file, split_dir


def ensure_sample_data(split="train", root=None):
    """Paths (annotation file, image folder) of a split, generating it if it is not there."""
    root = root or default_root()
    ann_file = os.path.join(root, "annotations", f"instances_{split}.json")
    image_dir = os.path.join(root, split)
    if not (os.path.isfile(ann_file) and os.path.isdir(image_dir)):
        os.makedirs(root, exist_ok=True)
        generate(root, split)
    return ann_file, image_dir


def load_sample_dataset(split="train", root=None):
    """The sample split as a DetectionDataset (generated on first use)."""
    from tfdet.data.coco import read_coco

    ann_file, image_dir = ensure_sample_data(split, root)
    return read_coco(ann_file, image_dir)
