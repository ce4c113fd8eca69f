"""The `tf.data` input pipeline: read -> decode -> transforms -> padded batches.

A batch is a dict of padded tensors, so every step has static rank:
  images [B, H, W, 3] float32 (H, W a multiple of `size_divisor`, or `pad_size`),
  boxes [B, M, 4] float32 xyxy in input pixels, classes [B, M] int32 (-1 = padding),
  is_crowd / difficult [B, M] bool, num_boxes [B] int32, image_id [B] int64,
  original_size [B, 2] int32 (h, w of the file), image_size [B, 2] int32 (h, w after resizing,
  before padding), scale [B, 2] float32 (y, x: input pixels per original pixel),
  position [B] int64 (each record's number in the pass, counted before any filtering),
  and with `masks=True`: masks [B, M, H, W] uint8 (0 / 1) instance masks in input pixels,
  rasterised from the COCO polygons / RLE (an instance without a segmentation is all zero).
"""
import collections
import json
import logging
import threading

import numpy as np
from pycocotools import mask as mask_utils
import tensorflow as tf

from tfdet.data.example import DetectionDataset, segmentation_rle
from tfdet.data.tfrecord import parse_record, shard_files

AUTOTUNE = tf.data.AUTOTUNE
logger = logging.getLogger("tfdet.data")
# Mapped functions are traced as written: their control flow is tf.cond / tf.where already, and
# AutoGraph's source conversion took about 3 s of every pipeline's construction.
_plain = tf.autograph.experimental.do_not_convert


def raw_elements(dataset: DetectionDataset, masks=False):
    """Elements before decoding: image path (or TFRecord bytes) and the annotations; with
    masks, `segmentation` [N] strings (each box's COCO segmentation as JSON, or empty)."""
    if dataset.tfrecord_pattern:
        files, _ = shard_files(dataset.tfrecord_pattern)
        # Only the records the reader kept (its checks), with its box rules.
        kept = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant([ex.image_id for ex in dataset.examples] or [-1], tf.int64),
            tf.ones([max(len(dataset.examples), 1)], tf.int64)), default_value=0)
        ds = tf.data.TFRecordDataset(files).map(
            _plain(lambda r: parse_record(r, dataset.num_classes)), num_parallel_calls=AUTOTUNE,
            deterministic=True).filter(_plain(lambda e: kept.lookup(e["image_id"]) > 0))
        if not masks:
            ds = ds.map(_plain(lambda e: {k: v for k, v in e.items() if k != "segmentation"}))
        return ds
    examples = dataset.examples
    if not examples:
        raise ValueError(f"{dataset.name}: no usable images ({dataset.skipped.summary()})")
    lengths = [ex.num_boxes for ex in examples]

    def ragged(values, dtype, inner=()):
        flat = np.concatenate([np.asarray(v, dtype).reshape((-1,) + inner) for v in values])
        return tf.RaggedTensor.from_row_lengths(flat, lengths)

    elements = {
        "path": [ex.path for ex in examples],
        "image_id": np.asarray([ex.image_id for ex in examples], np.int64),
        "boxes": ragged([ex.boxes for ex in examples], np.float32, (4,)),
        "classes": ragged([ex.classes for ex in examples], np.int32),
        "is_crowd": ragged([ex.is_crowd for ex in examples], bool),
        "difficult": ragged([ex.difficult for ex in examples], bool),
    }
    if masks:
        if not any(ex.masks for ex in examples):
            raise ValueError(f"{dataset.name}: the model needs instance masks and this data "
                             f"set has none (use COCO JSON with segmentations)")
        elements["segmentation"] = ragged(
            [[_segmentation_json(m) for m in (ex.masks or [None] * ex.num_boxes)]
             for ex in examples], object)
    return tf.data.Dataset.from_tensor_slices(elements)


def _segmentation_json(segmentation):
    return "" if segmentation is None else json.dumps(segmentation)


def rasterize_segmentations(segmentations, height, width):
    """[N] JSON strings of COCO segmentations (polygon lists, RLE dicts; '' for none) ->
    [N, height, width] uint8 masks (numpy; pycocotools does the drawing)."""
    height, width = int(height), int(width)
    out = np.zeros((len(segmentations), height, width), np.uint8)
    for i, text in enumerate(segmentations):
        text = text.decode() if isinstance(text, bytes) else text
        if not text:
            continue
        rle = segmentation_rle(json.loads(text), height, width)
        if rle is None:
            continue
        decoded = mask_utils.decode(rle)
        if decoded.shape != (height, width):
            raise ValueError(f"RLE of size {decoded.shape} on a {height}x{width} image")
        out[i] = decoded
    return out


def decode_image(encoded):
    """JPEG / PNG / GIF / BMP bytes -> [H, W, 3] uint8 RGB (grayscale and RGBA converted)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _to_sample(element):
    encoded = element["encoded"] if "encoded" in element else tf.io.read_file(element["path"])
    image = decode_image(encoded)
    size = tf.shape(image)[:2]
    sample = {
        "image": tf.cast(image, tf.float32),
        "boxes": element["boxes"],
        "classes": element["classes"],
        "is_crowd": element["is_crowd"],
        "difficult": element["difficult"],
        "image_id": element["image_id"],
        "original_size": size,
        "scale": tf.ones([2], tf.float32),
    }
    if "segmentation" in element:
        masks = tf.numpy_function(rasterize_segmentations,
                                  [element["segmentation"], size[0], size[1]], tf.uint8,
                                  stateful=False)
        masks.set_shape([None, None, None])
        sample["masks"] = masks
    return sample


class DataError(RuntimeError):
    """The input pipeline cannot make progress (no image decodes); names the files."""


# A 1x1 PNG that stands in for an element once the pipeline has given up on its data, so the
# element reaches the monitor, which raises (an error raised before ignore_errors is ignored).
_STAND_IN_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02"
                 b"\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDAT\x08\x99c```\x00\x00\x00\x04\x00\x01"
                 b"\xa3\n\x15\xe3\x00\x00\x00\x00IEND\xaeB`\x82")  # tf.io.encode_png of one black pixel


class DropMonitor:
    """Counts and names the elements the pipeline drops (images that stopped decoding after
    the reader checked them), and stops a pipeline that makes no progress.

    `mark` runs on every element before decoding, in order; `confirm` on every element that
    came through. Positions marked but never confirmed were dropped: each is logged with its
    file and counted in `dropped` / `dropped_files`. After `patience` elements in a row without
    one coming through, the next element is let through as a stand-in and `confirm` raises
    DataError naming the last files that failed, instead of the pipeline spinning forever.
    """

    def __init__(self, name, patience=1000):
        self.name = name
        self.patience = patience
        self.dropped = 0
        self.dropped_files = collections.Counter()
        self._pending = collections.deque()
        self._last_position = None
        self._lock = threading.Lock()

    def mark(self, position, key):
        position, key = int(position), key.numpy().decode("utf-8", "replace")
        with self._lock:
            if self._last_position is not None and position <= self._last_position:
                self._pending.clear()  # a new pass over the data
            self._last_position = position
            self._pending.append((position, key))
            return len(self._pending) > self.patience

    def confirm(self, position, gave_up):
        position = int(position)
        with self._lock:
            lost = []
            while self._pending and self._pending[0][0] < position:
                lost.append(self._pending.popleft()[1])
            if self._pending and self._pending[0][0] == position:
                self._pending.popleft()
        for key in lost:
            self.dropped += 1
            self.dropped_files[key] += 1
            logger.warning("%s: dropped %s: it failed to decode or transform (%d dropped so "
                           "far)", self.name, key, self.dropped)
        if bool(gave_up):
            raise DataError(
                f"{self.name}: no image came through the input pipeline in {self.patience} "
                f"elements in a row; the last that failed: "
                f"{', '.join(list(self.dropped_files)[-5:]) or 'unknown'}")
        return position

    def finish(self):
        """At the end of a finite pass: what was marked and never came through was dropped
        (the last elements have no successor to reveal them). Returns the dropped count."""
        self.confirm(2**62, False)
        self._last_position = None
        return self.dropped


def _finish(sample, max_boxes, min_box_size, drop_difficult):
    """Drops boxes made degenerate by transforms, pads the box tensors to max_boxes."""
    boxes = sample["boxes"]
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & (
        (boxes[:, 3] - boxes[:, 1]) >= min_box_size)
    if drop_difficult:
        keep &= ~sample["difficult"]
    out = {k: v for k, v in sample.items() if k != "image"}
    out["images"] = sample["image"]  # the batch key
    out["image_size"] = tf.shape(sample["image"])[:2]
    keys = ("boxes", "classes", "is_crowd", "difficult") + (("masks",) if "masks" in sample
                                                             else ())
    for key in keys:
        out[key] = tf.boolean_mask(sample[key], keep)[:max_boxes]
    n = tf.shape(out["boxes"])[0]
    pad = max_boxes - n
    if "masks" in sample:
        out["masks"] = tf.pad(out["masks"], [[0, pad], [0, 0], [0, 0]])
        out["masks"].set_shape([max_boxes, None, None])
    out["boxes"] = tf.pad(out["boxes"], [[0, pad], [0, 0]])
    out["classes"] = tf.pad(out["classes"], [[0, pad]], constant_values=-1)
    out["is_crowd"] = tf.pad(out["is_crowd"], [[0, pad]])
    out["difficult"] = tf.pad(out["difficult"], [[0, pad]])
    out["num_boxes"] = n
    for key, shape in (("boxes", [max_boxes, 4]), ("classes", [max_boxes]),
                       ("is_crowd", [max_boxes]), ("difficult", [max_boxes])):
        out[key].set_shape(shape)
    return out


def pad_to_divisor(batch, size_divisor):
    """batch['images'] (and masks) zero-padded at the bottom / right to multiples of
    size_divisor."""
    images = batch["images"]
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    ph = (h + size_divisor - 1) // size_divisor * size_divisor
    pw = (w + size_divisor - 1) // size_divisor * size_divisor
    out = dict(batch)
    out["images"] = tf.pad(images, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]])
    if "masks" in batch:
        out["masks"] = tf.pad(batch["masks"], [[0, 0], [0, 0], [0, ph - h], [0, pw - w]])
    return out


def box_capacity(dataset: DetectionDataset, max_boxes=None):
    """The per-image box slots a pipeline pads to: max_boxes, or by default the data set's
    own largest count (rounded up to a multiple of 8), so nothing is cut. When max_boxes is
    below some images' counts, says how many boxes of how many images will be cut."""
    counts = np.asarray([ex.num_boxes for ex in dataset.examples] or [0])
    if max_boxes is None:
        return int(max(8, -(-counts.max() // 8) * 8))
    over = counts > max_boxes
    if over.any():
        logger.warning("%s: %d images have more than max_boxes = %d boxes; %d boxes will be "
                       "cut (the largest count is %d; raise DataConfig.max_boxes to keep them)",
                       dataset.name, int(over.sum()), max_boxes,
                       int((counts[over] - max_boxes).sum()), int(counts.max()))
    return int(max_boxes)


def input_pipeline(dataset: DetectionDataset, transform, batch_size, *, training,
                   max_boxes=None, size_divisor=32, pad_size=None, shuffle_buffer=1024,
                   seed=None, drop_difficult=False, min_box_size=1.0, shard=None, skip=0,
                   masks=False, batch_transform=None, num_parallel_calls=AUTOTUNE):
    """Batches of `dataset` through `transform` (a `(sample, seed) -> sample` callable).

    training: shuffles, repeats forever and drops the last partial batch; otherwise one pass in
    order. seed: makes shuffling and the random transforms deterministic. pad_size: (H, W) to
    pad every batch to (static shapes for XLA); default pads to the batch's largest image
    rounded up to size_divisor. shard: (num_shards, index) for multi-worker input: every
    worker shuffles the same way (same seed) and keeps every num_shards-th element.
    max_boxes: box slots per image (default: the data set's largest count, see box_capacity;
    a smaller cap is reported with what it cuts).
    masks: also rasterise the instance masks (Mask R-CNN); the transforms carry them along.
    batch_transform: `(batch, step) -> batch` applied to each padded batch, step counted
    from skip // the global batch (e.g. YOLOv3's mixup and random input size).
    skip: elements to pass over before the first one, cheaply, before decoding and before
    sharding (so counted over all workers); a seeded pipeline resumed with skip = steps x the
    global batch continues exactly where it stopped.
    Images that fail to decode at run time (the readers decoded each once, so only files
    changed since) are dropped, each logged with its file and counted in the returned
    dataset's `drop_monitor`; a pipeline where nothing decodes stops with DataError.
    """
    max_boxes = box_capacity(dataset, max_boxes)
    ds = raw_elements(dataset, masks)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    base_seed = tf.constant([0 if seed is None else seed, 7], tf.int64)

    monitor = DropMonitor(dataset.name)

    def mark(index, element):
        key = element["path"] if "path" in element else tf.strings.join(
            ["record of image id ", tf.strings.as_string(element["image_id"])])
        gave_up = tf.py_function(monitor.mark, [index, key], tf.bool)
        gave_up.set_shape([])
        return index, element, gave_up

    def load(index, element, gave_up):
        if seed is None:
            element_seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        else:
            element_seed = tf.random.experimental.stateless_fold_in(base_seed, index)
        original = element
        element = dict(element)
        element["encoded"] = tf.cond(
            gave_up, lambda: tf.constant(_STAND_IN_PNG),
            lambda: original["encoded"] if "encoded" in original
            else tf.io.read_file(original["path"]))
        sample = transform(_to_sample(element), element_seed)
        out = _finish(sample, max_boxes, min_box_size, drop_difficult)
        return index, gave_up, out

    def confirm(index, gave_up, out):
        checked = tf.py_function(monitor.confirm, [index, gave_up], tf.int64)
        with tf.control_dependencies([checked]):
            out = {k: tf.identity(v) for k, v in out.items()}
        # The record's number before any filtering: a trainer resumes after the largest one
        # it consumed, so records dropped along the way do not shift the data position.
        out["position"] = index
        return out

    ds = ds.enumerate().skip(skip)
    if shard is not None:
        # After the seeded shuffle and the element numbering: the workers' shards of a step
        # are exactly the elements one process would batch, with the same random transforms,
        # and each worker reads and decodes only its own.
        ds = ds.shard(*shard)
    ds = ds.map(_plain(mark))
    ds = ds.map(_plain(load), num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.ignore_errors().map(_plain(confirm))
    # Only images vary in size; every other key already has its final shape.
    padded_shapes = {k: spec.shape for k, spec in ds.element_spec.items()}
    padded_shapes["images"] = [None, None, 3] if pad_size is None else [*pad_size, 3]
    if masks:
        padded_shapes["masks"] = [max_boxes] + padded_shapes["images"][:2]
    ds = ds.padded_batch(batch_size, padded_shapes=padded_shapes, drop_remainder=training)
    if batch_transform is not None:
        first = skip // (batch_size * (shard[0] if shard else 1))  # the global step
        ds = ds.enumerate(first).map(_plain(lambda step, batch: batch_transform(batch, step)),
                                     num_parallel_calls=AUTOTUNE)
    if pad_size is None:
        ds = ds.map(_plain(lambda b: pad_to_divisor(b, size_divisor)),
                    num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    ds.drop_monitor = monitor
    return ds


def release_iterator(holder):
    """Empties `holder`, a list holding the last reference to an input_pipeline iterator, on a
    short-lived thread. Dropped on the calling thread after a run of minutes, a training
    iterator (autotuned tf.data with py_function stages) took 10-34 s to go on a 2-core
    machine, the caller blocked all the while; on a helper thread it goes at once.

    The thread is not a daemon: the interpreter waits for it at exit. A daemon thread still
    destroying the iterator when the process ended was stopped inside TensorFlow's C++
    destructor (which needs the GIL for the py_function stages), and the process aborted
    ("FATAL: exception not rethrown", exit -6) after a finished run.

        holder = [iterator]; del iterator; release_iterator(holder)
    """
    threading.Thread(target=holder.clear, name="tfdet-release-iterator", daemon=False).start()
