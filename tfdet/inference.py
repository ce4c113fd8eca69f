"""One-call inference: `tfdet.detect(model, image)` on a uint8 image or a file path, with the
model's own resize and normalisation (its experiment's evaluation transform, the one eval.py
and the SavedModel use), returning boxes in that image's pixels, scores and class names.

The experiment comes from `experiment=`, else from the model (tfdet.models.load sets it from
the run folder's config.gin, with the run's class names), else from the zoo row's file in
tfdet's configs (by the model's name).
"""
import os

import numpy as np
import tensorflow as tf


def experiment_for(model):
    """The experiment whose eval transform a model's inputs go through (see the module)."""
    exp = getattr(model, "tfdet_experiment", None)
    if exp is not None:
        return exp
    from tfdet.config import load_experiment
    from tfdet.config_files import CONFIGS
    row = getattr(model, "tfdet_row", model.name)
    path = os.path.join(CONFIGS, f"{row}.gin")
    if not os.path.exists(path):
        raise ValueError(f"no config for model {row!r}: pass experiment= (the "
                         "tfdet.config.load_experiment of the config it was trained with)")
    return load_experiment(path)


def class_names_for(model):
    """The model's class names: the run's (tfdet.models.load), COCO's for 80 classes, else
    the class indices as text."""
    names = getattr(model, "tfdet_class_names", None)
    if names:
        return list(names)
    if getattr(model, "num_classes", None) == 80:
        from tfdet.data.coco_classes import COCO_CLASS_NAMES
        return list(COCO_CLASS_NAMES)
    return [str(k) for k in range(int(model.num_classes))]


def detect(model, image, experiment=None, class_names=None, score_threshold=None):
    """Detections of one image: uint8 [H, W, 3] RGB (numpy or tf) or a JPEG / PNG / GIF / BMP
    path. Returns {"boxes": [N, 4] float32 xyxy in the image's pixels, "scores": [N],
    "classes": [N] int contiguous ids, "class_names": [N] str}, best first; score_threshold
    drops lower scores (default: the model's own threshold only)."""
    from tfdet.data.pipeline import decode_image, pad_to_divisor
    from tfdet.detectors import run_detector
    from tfdet.evaluation.runner import to_original_pixels
    exp = experiment or experiment_for(model)
    if isinstance(image, (str, os.PathLike)):
        pixels = decode_image(tf.io.read_file(os.fspath(image)))
    else:
        pixels = tf.convert_to_tensor(image)
        if pixels.dtype != tf.uint8 or pixels.shape.rank != 3 or pixels.shape[-1] != 3:
            raise ValueError(f"image must be uint8 [H, W, 3] or a file path, got "
                             f"{pixels.dtype.name} {pixels.shape}")
    size = tf.shape(pixels)[:2]
    sample = {"image": tf.cast(pixels, tf.float32), "boxes": tf.zeros([0, 4]),
              "scale": tf.ones([2])}
    sample = exp.eval_transform()(sample, tf.zeros([2], tf.int64))
    h, w = int(sample["image"].shape[0]), int(sample["image"].shape[1])
    # Padded as the evaluation pipeline pads its batches.
    x = pad_to_divisor({"images": sample["image"][None]}, exp.data.size_divisor)["images"]
    out = run_detector(model, x, tf.constant([[h, w]], tf.float32))
    n = int(out["num_detections"][0])
    boxes = to_original_pixels(out["boxes"][:, :n].numpy(), sample["scale"].numpy()[None],
                               size.numpy()[None])[0].astype(np.float32)
    scores = out["scores"][0, :n].numpy()
    classes = out["classes"][0, :n].numpy().astype(np.int64)
    keep = np.argsort(-scores, kind="stable")
    if score_threshold is not None:
        keep = keep[scores[keep] >= score_threshold]
    names = class_names or class_names_for(model)
    return {"boxes": boxes[keep], "scores": scores[keep], "classes": classes[keep],
            "class_names": [str(names[c]) if c < len(names) else str(c)
                            for c in classes[keep]]}
