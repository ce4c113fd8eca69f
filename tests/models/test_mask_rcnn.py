"""Mask R-CNN: the reference parameter count for every registered row, the mask branch's
shapes and losses, and mask AP of ground-truth masks through crop, paste and scoring."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import require_shared
from tests.models.test_faster_rcnn import FASTER_R50_C4_81, check_row_counts
from tfdet import data, models, ops
from tfdet.evaluation import evaluate_detector

MASK_R50_FPN_81 = 44_400_693  # REFERENCE.md, 80 classes + background
# C4: a 2x2 deconv 2048 -> 256 and a 1x1 conv 256 -> 81 on the res5 RoI maps.
MASK_R50_C4_81 = FASTER_R50_C4_81 + (2048 * 256 * 4 + 256) + (256 * 81 + 81)


def test_every_mask_rcnn_row_builds_with_the_reference_count():
    check_row_counts("mask_rcnn_", 9, MASK_R50_FPN_81, MASK_R50_C4_81)
    assert models.predicts_masks("mask_rcnn_r50_fpn")
    assert not models.predicts_masks("faster_rcnn_r50_fpn")


def _batch():
    masks = np.zeros((2, 2, 96, 128), np.uint8)
    masks[0, 0, 20:90, 10:60] = 1
    masks[1, 0, 30:90, 30:110] = 1
    masks[1, 1, 5:40, 5:40] = 1
    return {"images": tf.random.stateless_normal([2, 96, 128, 3], [5, 6]),
            "boxes": tf.constant([[[10, 20, 60, 90], [0, 0, 0, 0]],
                                  [[30, 30, 110, 90], [5, 5, 40, 40]]], tf.float32),
            "classes": tf.constant([[0, -1], [1, 0]]), "is_crowd": tf.zeros([2, 2], tf.bool),
            "masks": tf.constant(masks)}


@pytest.mark.parametrize("name, mask_size", [("mask_rcnn_r50_fpn", 28), ("mask_rcnn_r50", 14)])
def test_masks_at_inference_and_the_mask_loss_in_training(name, mask_size):
    model = models.get(name, num_classes=2, depth=18, norm="bn", freeze_at=0,
                       test_pre_nms_top_k=100, test_post_nms_top_k=30, max_detections=20,
                       roi_batch_per_image=64, **({"fpn_channels": 32, "fc_dim": 64,
                                                   "mask_conv_dim": 32}
                                                  if "fpn" in name else {}))
    batch = _batch()
    out = model(batch["images"])
    assert out["masks"].shape == (2, 20, mask_size, mask_size)
    assert 0.0 <= float(tf.reduce_min(out["masks"])) <= float(tf.reduce_max(out["masks"])) <= 1
    with tf.GradientTape() as tape:
        losses = model.compute_losses(batch)
    assert set(losses) == {"rpn_class_loss", "rpn_box_loss", "rcnn_class_loss",
                           "rcnn_box_loss", "mask_loss", "total_loss"}
    assert all(np.isfinite(float(v)) and float(v) >= 0 for v in losses.values())
    assert float(losses["mask_loss"]) > 0.05  # untrained: far from the binary targets
    grads = tape.gradient(losses["mask_loss"], model.mask_head.trainable_weights)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("counts", [(3, 17), (0, 0), (40, 40)])
def test_mask_head_runs_on_the_kept_detections_only(counts):
    """add_masks runs the mask head on the batch's largest detection count rounded up to 16
    slots (one when there is none): the masks of the kept detections equal the mask head's
    over all 40 slots, those past each image's count are zero."""
    from tfdet.detectors.roi_heads import MASK_BUCKET
    model = models.get("mask_rcnn_r50_fpn", num_classes=2, depth=18, fpn_channels=32,
                       fc_dim=64, mask_conv_dim=32)
    images = tf.random.stateless_normal([2, 96, 128, 3], [1, 2])
    heads = model.roi_heads
    *pyramid, _, _ = model.network(images)
    boxes = tf.random.stateless_uniform([2, 40, 2], [3, 4], 0, 40)
    boxes = tf.concat([boxes, boxes + tf.random.stateless_uniform([2, 40, 2], [5, 6], 8, 50)],
                      -1)
    classes = tf.random.stateless_uniform([2, 40], [7, 8], 0, 2, tf.int32)
    seen = []
    call = heads.mask_head.call
    heads.mask_head.call = lambda x, *a, **k: seen.append(x.shape[1]) or call(x, *a, **k)
    try:
        out = heads.add_masks({"boxes": boxes, "classes": classes,
                               "num_detections": tf.constant(counts, tf.int32)}, pyramid)
    finally:
        heads.mask_head.call = call
    top = max(counts)
    assert seen == [max(1, min(40, -(-top // MASK_BUCKET) * MASK_BUCKET))]
    assert out["masks"].shape == (2, 40, 28, 28)
    full = tf.sigmoid(tf.gather(heads.mask_logits(pyramid, boxes), classes + 1, axis=4,
                                batch_dims=2)).numpy()
    for b, n in enumerate(counts):
        np.testing.assert_allclose(out["masks"][b, :n], full[b, :n], atol=1e-5)
        assert not np.any(out["masks"][b, n:].numpy())


def test_ground_truth_masks_cropped_and_pasted_back_score_mask_ap50_one():
    """The 28x28 crop of each instance (ops.mask_targets) at its box, pasted back by the
    evaluation, is scored against the polygons: mask AP50 1.0 and a high mask AP."""
    root = require_shared("coco128")
    full = data.load_dataset(f"coco:{root}/annotations/instances_train2017_first128.json:"
                             f"{root}/images/train2017")
    dataset = dataclasses.replace(full, examples=[ex for ex in full.examples
                                                  if ex.image_id in (34, 72, 144, 263)])
    transform = data.detection_transforms(False, 320, 320)
    pipeline = data.input_pipeline(dataset, transform, 2, training=False, masks=True,
                                   max_boxes=16)
    batches = list(pipeline)

    def oracle(images):
        batch = next(b for b in batches if b["images"] is images)
        n = batch["num_boxes"]
        index = tf.tile(tf.range(16)[None], [tf.shape(n)[0], 1])
        return {"boxes": batch["boxes"], "scores": tf.where(index < n[:, None], 0.9, 0.0),
                "classes": batch["classes"], "num_detections": n,
                "masks": ops.mask_targets(batch["masks"], batch["boxes"], index)}

    metrics, _ = evaluate_detector(lambda images, sizes: oracle(images), batches, dataset,
                                   verbose=False, progress=False)
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["AP"] > 0.9
    assert metrics["mask_AP50"] == pytest.approx(1.0)
    assert 0.6 < metrics["mask_AP"] < 1.0  # 28x28 masks resampled at 320 px lose detail
