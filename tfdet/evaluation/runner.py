"""Runs a detector over a data set and scores it with COCO metrics.

Works on anything that maps a batch of pipeline images to the detection dict (a Keras detector,
or its tf.function), so a checkpoint and an export go through the same scoring.
"""
import numpy as np
import tensorflow as tf
import tqdm

from tfdet.evaluation.coco import CocoEvaluator


def compiled_predictor(model):
    """model(images) as one tf.function for any image size (no retracing per shape)."""
    return tf.function(lambda images: model(images, training=False),
                       input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])


def to_original_pixels(boxes, scale, original_size):
    """boxes [B, N, 4] xyxy in input pixels -> original-image pixels, clipped.

    scale [B, 2] (y, x: input pixels per original pixel); original_size [B, 2] (h, w)."""
    boxes = np.asarray(boxes, np.float64)
    sy, sx = np.asarray(scale)[:, 0, None], np.asarray(scale)[:, 1, None]
    h, w = np.asarray(original_size)[:, 0, None], np.asarray(original_size)[:, 1, None]
    out = np.stack([boxes[..., 0] / sx, boxes[..., 1] / sy, boxes[..., 2] / sx,
                    boxes[..., 3] / sy], -1)
    return np.clip(out, 0, np.stack([w, h, w, h], -1))


def evaluate_detector(predict, pipeline, dataset, verbose=True, progress=True):
    """COCO box metrics of `predict(images) -> detection dict` over an eval pipeline of
    `dataset` (a DetectionDataset). Returns (metrics dict, CocoEvaluator)."""
    evaluator = CocoEvaluator(dataset)
    for batch in tqdm.tqdm(pipeline, desc="evaluating", disable=not progress, leave=False):
        detections = predict(batch["images"])
        boxes = to_original_pixels(detections["boxes"], batch["scale"], batch["original_size"])
        evaluator.add_detections(batch["image_id"].numpy(), boxes, detections["scores"].numpy(),
                                 detections["classes"].numpy(),
                                 detections["num_detections"].numpy())
    return evaluator.evaluate("bbox", verbose=verbose), evaluator
