"""Runs a detector over a data set and scores it with COCO metrics (box, and mask AP for
detectors that predict masks).

Works on anything that maps a batch of pipeline images to the detection dict (a Keras detector,
or its tf.function), so a checkpoint and an export go through the same scoring.
"""
import sys

import numpy as np
import tensorflow as tf
import tqdm

from tfdet import ops
from tfdet._quiet import is_terminal
from tfdet.evaluation.coco import CocoEvaluator
from tfdet.evaluation.voc import VocEvaluator
from tfdet.evaluation.widerface import WiderFaceEvaluator


def compiled_predictor(model):
    """predict(images, image_sizes) -> model's detections, one tf.function for any image size
    (no retracing per shape); image_sizes [B, 2] (h, w before padding) reach the detectors
    that clip to them (tfdet.detectors.run_detector)."""
    from tfdet.detectors import run_detector
    return tf.function(lambda images, image_sizes: run_detector(model, images, image_sizes),
                       input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                        tf.TensorSpec([None, 2], tf.float32)], autograph=False)


def tta_predictor(tta):
    """predict(images, image_sizes) for evaluate_detector from a tfdet.tta
    TestTimeAugmentation, on Experiment.tta_pipeline batches (one unresized image); one
    tf.function for any image size."""
    def predict(images, image_sizes):
        return tta(images[0], tf.cast(image_sizes[0], tf.int32))
    return tf.function(predict, input_signature=[
        tf.TensorSpec([1, None, None, 3], tf.float32), tf.TensorSpec([1, 2], tf.float32)],
        autograph=False)


def to_original_pixels(boxes, scale, original_size):
    """boxes [B, N, 4] xyxy in input pixels -> original-image pixels, clipped.

    scale [B, 2] (y, x: input pixels per original pixel); original_size [B, 2] (h, w)."""
    boxes = np.asarray(boxes, np.float64)
    sy, sx = np.asarray(scale)[:, 0, None], np.asarray(scale)[:, 1, None]
    h, w = np.asarray(original_size)[:, 0, None], np.asarray(original_size)[:, 1, None]
    out = np.stack([boxes[..., 0] / sx, boxes[..., 1] / sy, boxes[..., 2] / sx,
                    boxes[..., 3] / sy], -1)
    return np.clip(out, 0, np.stack([w, h, w, h], -1))


def image_masks(box_masks, boxes, height, width, threshold=0.5):
    """Per-box mask probabilities [N, m, m] and their boxes [N, 4] xyxy original pixels ->
    [N, height, width] uint8 binary image masks (pasted with ops.paste_masks)."""
    pasted = ops.paste_masks(np.asarray(box_masks, np.float32)[None],
                             np.asarray(boxes, np.float32)[None], int(height), int(width))
    return (pasted[0].numpy() >= threshold).astype(np.uint8)


def evaluator_for(metric, dataset):
    """The evaluator of a metric name (see evaluate_detector) over a DetectionDataset."""
    kind, _, gt_dir = metric.partition(":")
    if kind not in ("coco", "voc", "widerface") or (gt_dir and kind != "widerface"):
        raise ValueError(f"metric must be 'coco', 'voc' or 'widerface[:GROUND_TRUTH_DIR]', "
                         f"got {metric!r}")
    if kind == "widerface":
        return WiderFaceEvaluator(dataset, gt_dir or None)
    return CocoEvaluator(dataset) if kind == "coco" else VocEvaluator(dataset)


def evaluate_detector(predict, pipeline, dataset, verbose=True, progress=True, metric="coco"):
    """Metrics of `predict(images, image_sizes) -> detection dict` (image_sizes [B, 2] float32:
    each image's h, w before padding) over an eval pipeline of `dataset`
    (a DetectionDataset). metric 'coco': box AP, plus mask AP as `mask_AP`, `mask_AP50`, ...
    when the detections carry `masks` (per-box probabilities, pasted into the original
    image); 'voc': the VOC2007 11-point mAP at IoU 0.5 (`mAP`, `AP/<class>`); 'widerface'
    or 'widerface:GROUND_TRUTH_DIR': the WIDER FACE protocol (tfdet.evaluation.widerface:
    `AP_all` over the data set's faces, or `AP_easy` / `AP_medium` / `AP_hard` with the
    official .mat files of that folder). Returns (metrics dict, the evaluator)."""
    kind = metric.partition(":")[0]
    evaluator = evaluator_for(metric, dataset)
    with_masks = False
    bar = tqdm.tqdm(total=len(dataset.examples), desc="evaluating", unit="img",
                    disable=not progress, leave=False,
                    mininterval=0.1 if is_terminal(sys.stderr) else 30.0)
    for batch in pipeline:
        bar.update(int(batch["images"].shape[0]))
        detections = predict(batch["images"], tf.cast(batch["image_size"], tf.float32))
        boxes = to_original_pixels(detections["boxes"], batch["scale"], batch["original_size"])
        counts = detections["num_detections"].numpy()
        masks = None
        if "masks" in detections and kind == "coco":
            with_masks = True
            masks = [image_masks(detections["masks"][b, :n], boxes[b, :n], *size)
                     for b, (n, size) in enumerate(zip(counts,
                                                       batch["original_size"].numpy()))]
        extra = {"masks": masks} if masks is not None else {}
        evaluator.add_detections(batch["image_id"].numpy(), boxes, detections["scores"].numpy(),
                                 detections["classes"].numpy(), counts, **extra)
    bar.close()
    monitor = getattr(pipeline, "drop_monitor", None)
    if monitor is not None:
        monitor.finish()  # logs each image the pipeline dropped, by file
    if kind != "coco":
        return evaluator.evaluate(verbose=verbose), evaluator
    return coco_metrics(evaluator, with_masks, verbose), evaluator


def coco_metrics(evaluator, with_masks, verbose=True):
    """A CocoEvaluator's box metrics, plus its mask metrics as `mask_AP`, ... when the
    detections carried masks."""
    metrics = evaluator.evaluate("bbox", verbose=verbose)
    if with_masks:
        segm = evaluator.evaluate("segm", verbose=verbose)
        metrics.update({f"mask_{name}": value for name, value in segm.items()})
    return metrics


def headline(metrics):
    """The headline numbers of a metrics dict: {'AP', 'AP50', 'AP75'} (+ the mask ones) for
    COCO, {'mAP'} for VOC, the settings' APs for WIDER FACE."""
    if "mAP" in metrics:
        return {"mAP": metrics["mAP"]}
    faces = {k: v for k, v in metrics.items() if k.startswith("AP_")}
    if faces:
        return faces
    keys = ["AP", "AP50", "AP75"] + (["mask_AP", "mask_AP50", "mask_AP75"]
                                     if "mask_AP" in metrics else [])
    return {k: metrics[k] for k in keys}


def evaluate_saved_model(path, dataset):
    """COCO metrics (and the CocoEvaluator) of the SavedModel at `path` on a DetectionDataset:
    each image file through its `serving_encoded` signature (the served graph's own decoding,
    resizing and post-processing), mask AP too when it returns detection_masks."""
    fn = tf.saved_model.load(path).signatures["serving_encoded"]
    evaluator = CocoEvaluator(dataset)
    with_masks = "detection_masks" in fn.structured_outputs
    to_class = {float(c): k for k, c in enumerate(dataset.category_ids)}
    for ex in tqdm.tqdm(dataset.examples, desc="evaluating", leave=False):
        out = fn(encoded_images=tf.io.read_file(ex.path)[None])
        n = int(out["num_detections"][0])
        y1, x1, y2, x2 = np.moveaxis(out["detection_boxes"][0, :n].numpy(), -1, 0)
        boxes = np.stack([x1 * ex.width, y1 * ex.height, x2 * ex.width, y2 * ex.height], -1)
        classes = [to_class[float(c)] for c in out["detection_classes"][0, :n].numpy()]
        masks = None
        if with_masks:
            masks = [image_masks(out["detection_masks"][0, :n], boxes, ex.height, ex.width)]
        evaluator.add_detections([ex.image_id], boxes[None], out["detection_scores"][:, :n],
                                 np.asarray(classes, np.int64).reshape(1, n), masks=masks)
    return coco_metrics(evaluator, with_masks), evaluator
