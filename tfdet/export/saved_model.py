"""SavedModel export for TF Serving, in the TF Object Detection API's output layout.

Signatures (tag `serve`):
  serving_default(images: uint8 [batch, height, width, 3])
  serving_encoded(encoded_images: string [batch])  JPEG / PNG / GIF / BMP bytes, any sizes
Both resize and normalise (the evaluation transform of the model's config), pad and
post-process in the graph and
return detection_boxes [batch, N, 4] normalised [ymin, xmin, ymax, xmax] of the original image,
detection_scores [batch, N], detection_classes [batch, N] float32 (the data set's category
ids), num_detections [batch] float32, and for Mask R-CNN detection_masks [batch, N, m, m]:
each box's mask probabilities in its box (the OD API's per-box layout; paste them into the
image with the box, as `tfdet.ops.paste_masks` does). Rows past num_detections are zero.

An image of more than `max_pixels` (width x height, default 40 MP) is refused with an
InvalidArgumentError naming its size; for `serving_encoded` the size is read from the JPEG /
PNG / GIF / BMP header before anything is decoded, so a small file that would decode to
gigabytes (a decompression bomb) costs nothing.

Weights are graph constants by default (`freeze_weights=True`): the detector is traced once,
its variables become constants of that one function, and every signature calls it. oneDNN
then reorders each conv kernel into its blocked layout once and keeps it (TensorFlow's
`is_filter_const`), instead of on every call: on a 2-core AMX Xeon that took RetinaNet R50-FPN
at 512 from 488 to 386 ms (BENCHMARKS.md), in stock TensorFlow Serving as well. The weights
then live in saved_model.pb instead of variables/ (a protocol buffer is limited to 2 GB: a
detector with more than `FREEZE_LIMIT_BYTES` of weights keeps its variables, with a log
line). With `tta`, serving_tta runs the variables (saved as well, so the weights are stored
twice).
"""
import json
import math
import os

import numpy as np
import tensorflow as tf

from tfdet.data.transforms import Normalize

from tfdet.detectors import run_detector

DEFAULT_SERVING_MAX_PIXELS = 40_000_000
# Weights beyond this stay variables: saved_model.pb, a protocol buffer, must stay under 2 GB.
FREEZE_LIMIT_BYTES = 1_500_000_000


def untrained_biases(model, seed=0, stddev=1e-6):
    """Draws N(0, stddev) into every bias / beta vector of `model` that is all zeros (a
    freshly built detector's); returns how many. For speed measurements of untrained exports:
    grappler's constant folding removes an all-zero constant bias add, and a conv followed by
    its ReLU alone is not fused (oneDNN runs the ReLU as a separate pass), so a frozen export
    of fresh weights would time a graph that trained weights never give. The values are tiny
    so that the detections stay those of the fresh weights (Mask R-CNN's mask head works on
    as many as are kept: with N(0, 0.01) biases its random weights kept 0-44 boxes per image
    instead of 100)."""
    rng = np.random.default_rng(seed)
    filled = 0
    for w in model.weights:  # once, at export: not a graph
        if len(w.shape) == 1 and w.name in ("bias", "beta"):
            value = np.asarray(w.numpy())
            if not value.any():
                w.assign(rng.normal(0.0, stddev, value.shape).astype(value.dtype))
                filled += 1
    return filled


def frozen_detector(model):
    """run_detector(model, images [B, H, W, 3] float32, image_sizes [B, 2] float32) as a
    function whose weights are constants (traced once; the same outputs as the model)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    traced = tf.function(lambda images, sizes: run_detector(model, images, sizes),
                         autograph=False).get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32, name="images"),
        tf.TensorSpec([None, 2], tf.float32, name="image_sizes"))
    frozen = convert_variables_to_constants_v2(traced)
    structure = traced.structured_outputs

    def detect(images, sizes):
        return tf.nest.pack_sequence_as(structure, frozen(images, sizes))
    return detect


def _le(data, start, count):
    """Unsigned little-endian integer from bytes [start, start + count) of a uint8 vector."""
    value = tf.zeros([], tf.int64)
    for i in reversed(range(count)):
        value = value * 256 + tf.cast(data[start + i], tf.int64)
    return value


def _be(data, start, count):
    value = tf.zeros([], tf.int64)
    for i in range(count):
        value = value * 256 + tf.cast(data[start + i], tf.int64)
    return value


def encoded_image_size(encoded):
    """(height, width) int64 of JPEG / PNG / GIF / BMP bytes from their header, with stock
    ops and without decoding; (0, 0) for anything else (the decoder then refuses it)."""
    padded = tf.strings.join([encoded, tf.constant(b"\x00" * 32)])  # short files are safe
    head = tf.io.decode_raw(tf.strings.substr(padded, 0, 32), tf.uint8)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(encoded, output_type=tf.int64)
        return shape[0], shape[1]

    is_png = tf.reduce_all(tf.equal(head[:4], tf.constant([0x89, 0x50, 0x4E, 0x47], tf.uint8)))
    is_gif = tf.reduce_all(tf.equal(head[:3], tf.constant([0x47, 0x49, 0x46], tf.uint8)))
    is_bmp = tf.reduce_all(tf.equal(head[:2], tf.constant([0x42, 0x4D], tf.uint8)))

    def bmp():
        height = _le(head, 22, 4)
        height = tf.where(height >= 2**31, 2**32 - height, height)  # top-down rows: negative
        return height, _le(head, 18, 4)

    return tf.case([(tf.io.is_jpeg(encoded), jpeg),
                    (is_png, lambda: (_be(head, 20, 4), _be(head, 16, 4))),
                    (is_gif, lambda: (_le(head, 8, 2), _le(head, 6, 2))),
                    (is_bmp, bmp)],
                   default=lambda: (tf.zeros([], tf.int64), tf.zeros([], tf.int64)))


def check_pixels(height, width, max_pixels):
    """An assertion that height x width <= max_pixels, naming the size."""
    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    return tf.debugging.Assert(
        pixels <= max_pixels,
        [f"image too large for this model's server (limit {max_pixels} pixels, width x "
         f"height); its height and width are", height, width], summarize=2)


class DetectionServingModule(tf.Module):
    """Wraps a detector with in-graph pre- and post-processing; see the module docstring."""

    def __init__(self, model, category_ids, transform, canvas, size_divisor=128,
                 max_pixels=DEFAULT_SERVING_MAX_PIXELS, tta=None, freeze_weights=False):
        super().__init__()
        self.tta = tta
        self.max_pixels = int(max_pixels)
        self.model = model
        # The detector as one function with constant weights (module docstring), or None.
        self._frozen = [frozen_detector(model)] if freeze_weights else None
        # What the SavedModel keeps of the detector (see _trackable_children): its variables,
        # unless they are constants of the frozen function and no TTA signature reads them.
        if not freeze_weights or tta is not None:
            self.detector_variables = list(model.weights)
        self.category_ids = tf.constant([float(c) for c in category_ids], tf.float32)
        # The evaluation pipeline's own resize + normalise, so serving matches evaluation.
        self.transform = transform
        self.size_divisor = int(size_divisor)
        # Every resized image fits this canvas; images of one batch are stacked on it.
        self.canvas = int(canvas)

    def _preprocess_one(self, image):
        """uint8 [h, w, 3] -> (normalised image on the canvas, [new_h, new_w, h, w])."""
        with tf.control_dependencies([check_pixels(tf.shape(image)[0], tf.shape(image)[1],
                                                   self.max_pixels)]):
            image = tf.identity(image)
        sample = {"image": tf.cast(image, tf.float32), "boxes": tf.zeros([0, 4]),
                  "scale": tf.ones([2])}
        normalised = self.transform(sample, tf.zeros([2], tf.int64))["image"]
        new_size = tf.shape(normalised)[:2]
        padded = tf.pad(normalised, [[0, self.canvas - new_size[0]],
                                     [0, self.canvas - new_size[1]], [0, 0]])
        return padded, tf.concat([new_size, tf.shape(image)[:2]], 0)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        """For a SavedModel, the detector's variables without the Keras model (and the TTA
        wrapper around it): saving that object would trace and store Keras' own default
        serving function, a third trace of the detector that no signature uses."""
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "savedmodel":
            children.pop("model", None)
            children.pop("tta", None)
            children.pop("_frozen", None)
        return children

    def _preprocess(self, fn, elements):
        """fn mapped over a batch: (canvases [B, C, C, 3], sizes [B, 4])."""
        return tf.map_fn(
            fn, elements,
            fn_output_signature=(tf.TensorSpec([self.canvas, self.canvas, 3], tf.float32),
                                 tf.TensorSpec([4], tf.int32)))

    def _detect(self, canvases, sizes):
        """Crops the canvases to the batch's padded size, runs the model, OD API outputs."""
        d = self.size_divisor
        max_hw = tf.reduce_max(sizes[:, :2], axis=0)
        padded_hw = (max_hw + d - 1) // d * d
        batch = canvases[:, :padded_hw[0], :padded_hw[1]]
        resized = tf.cast(sizes[:, :2], tf.float32)
        if self._frozen is not None:
            detections = self._frozen[0](batch, resized)
        else:
            detections = run_detector(self.model, batch, resized)
        x1, y1, x2, y2 = tf.unstack(detections["boxes"], axis=-1)
        # Input pixels -> fraction of the resized image = fraction of the original image.
        h, w = resized[:, 0, None], resized[:, 1, None]
        boxes = tf.clip_by_value(tf.stack([y1 / h, x1 / w, y2 / h, x2 / w], -1), 0.0, 1.0)
        n = detections["num_detections"]
        valid = tf.sequence_mask(n, tf.shape(boxes)[1])
        classes = tf.gather(self.category_ids, detections["classes"])
        zeros = tf.zeros_like(detections["scores"])
        valid_f = tf.cast(valid, tf.float32)
        outputs = {
            "detection_boxes": boxes * valid_f[..., None],
            "detection_scores": tf.where(valid, detections["scores"], zeros),
            "detection_classes": tf.where(valid, classes, zeros),
            "num_detections": tf.cast(n, tf.float32),
        }
        if "masks" in detections:
            outputs["detection_masks"] = detections["masks"] * valid_f[..., None, None]
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
                 autograph=False)
    def serve_images(self, images):
        return self._detect(*self._preprocess(self._preprocess_one, images))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="encoded_images")],
                 autograph=False)
    def serve_encoded(self, encoded_images):
        def decode_and_preprocess(encoded):
            height, width = encoded_image_size(encoded)
            with tf.control_dependencies([check_pixels(height, width, self.max_pixels)]):
                encoded = tf.identity(encoded)
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            return self._preprocess_one(image)

        return self._detect(*self._preprocess(decode_and_preprocess, encoded_images))

    def serve_tta(self, images):
        """serving_tta: uint8 [B, H, W, 3] -> the OD API outputs of tfdet.tta's multi-scale +
        flip test (each image alone, unresized; boxes only)."""
        normalize = next(t for t in self.transform.transforms if isinstance(t, Normalize))
        n = self.tta.max_detections

        def one(image):
            with tf.control_dependencies([check_pixels(tf.shape(image)[0], tf.shape(image)[1],
                                                       self.max_pixels)]):
                image = tf.cast(image, tf.float32)
            x = normalize({"image": image}, tf.zeros([2], tf.int64))["image"]
            out = self.tta(x)
            h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1],
                                                                   tf.float32)
            x1, y1, x2, y2 = tf.unstack(out["boxes"][0], axis=-1)
            boxes = tf.clip_by_value(tf.stack([y1 / h, x1 / w, y2 / h, x2 / w], -1), 0.0, 1.0)
            valid = tf.range(n) < out["num_detections"][0]
            valid_f = tf.cast(valid, tf.float32)
            classes = tf.gather(self.category_ids, out["classes"][0])
            return (boxes * valid_f[:, None], out["scores"][0] * valid_f, classes * valid_f,
                    tf.cast(out["num_detections"][0], tf.float32))

        boxes, scores, classes, num = tf.map_fn(one, images, fn_output_signature=(
            tf.TensorSpec([n, 4], tf.float32), tf.TensorSpec([n], tf.float32),
            tf.TensorSpec([n], tf.float32), tf.TensorSpec([], tf.float32)))
        return {"detection_boxes": boxes, "detection_scores": scores,
                "detection_classes": classes, "num_detections": num}


def export_saved_model(model, output_dir, category_ids, class_names=None, *, transform, canvas,
                       size_divisor=128, max_pixels=DEFAULT_SERVING_MAX_PIXELS, tta=None,
                       fold_norms=False, freeze_weights=True):
    """Writes the SavedModel to output_dir, assets.extra/labels.json and, when
    tensorflow-serving-api is installed, TF Serving's warm-up requests
    (assets.extra/tf_serving_warmup_requests, tfdet.export.serving); returns the path.

    transform: the evaluation transform (`Experiment.eval_transform()`, e.g.
    `data.detection_transforms(False, 800, 1333)`); canvas: a side every transformed image
    fits in (`Experiment.serving_canvas()`); size_divisor: each batch is padded to a multiple
    of it, as the evaluation pipeline pads. max_pixels: the largest image (width x height)
    the signatures accept. tta: a tfdet.tta.TestTimeAugmentation of the model
    (`Experiment.tta(model)`): adds the `serving_tta` signature (uint8 images, the
    multi-scale + flip test; keep-aspect rows only). fold_norms: first fold the model's
    inference-time norms into their convs, in place (tfdet.export.fold_norms: the same
    detections, fused conv kernels; the model cannot train afterwards; scripts/export.py
    does it on the model it restores). freeze_weights: the weights as constants of one traced
    detector function (module docstring; False, or more than FREEZE_LIMIT_BYTES of weights,
    keeps them variables)."""
    if tta is not None and not any(isinstance(t, Normalize)
                                   for t in getattr(transform, "transforms", ())):
        raise ValueError("export_saved_model(tta=...): the transform must be a Compose "
                         "with a Normalize step (the evaluation transform of a keep-aspect "
                         "config)")
    if fold_norms:
        from tfdet.export.fold_norms import fold_norms as fold
        fold(model)
    weight_bytes = sum(math.prod(w.shape) * tf.as_dtype(w.dtype).size for w in model.weights)
    if freeze_weights and weight_bytes > FREEZE_LIMIT_BYTES:
        from absl import logging
        logging.warning("export: %.2f GB of weights stay variables (graph constants are "
                        "limited to %.1f GB)", weight_bytes / 1e9, FREEZE_LIMIT_BYTES / 1e9)
        freeze_weights = False
    module = DetectionServingModule(model, category_ids, transform, canvas, size_divisor,
                                    max_pixels, tta, freeze_weights)
    # The tf.functions themselves, not concrete functions traced here: saving traces them in its
    # own context (a different tracing-cache key), so tracing first would trace each twice.
    signatures = {"serving_default": module.serve_images,
                  "serving_encoded": module.serve_encoded}
    if tta is not None:
        signatures["serving_tta"] = tf.function(module.serve_tta, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")], autograph=False)
    from tfdet._quiet import tf_info_muted
    with tf_info_muted():  # no INFO lines about signatures, sharding, assets, fingerprints
        tf.saved_model.save(module, output_dir, signatures=signatures)
    labels = {"category_ids": [int(c) for c in category_ids],
              "class_names": list(class_names or [str(c) for c in category_ids])}
    os.makedirs(os.path.join(output_dir, "assets.extra"), exist_ok=True)
    with open(os.path.join(output_dir, "assets.extra", "labels.json"), "w") as f:
        json.dump(labels, f)
    from tfdet.export import serving
    try:
        serving.write_warmup_requests(output_dir)
    except ImportError:
        from absl import logging
        logging.info("no TF Serving warm-up requests written (pip install "
                     "tensorflow-serving-api to have them)")
    return output_dir


def next_version_dir(base):
    """base/<N+1>, TF Serving's numbered-version layout (1 for an empty base)."""
    versions = [int(v) for v in os.listdir(base) if v.isdigit()] if os.path.isdir(base) else []
    return os.path.join(base, str(max(versions, default=0) + 1))
