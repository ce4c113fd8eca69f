"""Mask R-CNN (He et al. 2017): Faster R-CNN plus a mask head on the positive RoIs.

`model(images)` returns Faster R-CNN's detection dict plus masks [B, max_detections, m, m]:
each detection's mask probabilities in its box (m = 28 for FPN, 14 for C4), the OD API's
per-box layout; `ops.paste_masks` places them in the image. `compute_losses(batch)` adds
mask_loss; the batch needs `masks` [B, M, H, W] (the input pipeline with masks=True).
"""
import keras
import tensorflow as tf

from tfdet import ops
from tfdet.detectors.faster_rcnn import FasterRCNN, _select
from tfdet.detectors.ground_truth import ground_truth
from tfdet.heads import MaskHead
from tfdet.losses import replica_mean


@keras.saving.register_keras_serializable("tfdet")
class MaskRCNN(FasterRCNN):
    """Mask R-CNN; FasterRCNN's settings plus the mask branch.

    FPN: RoIAlign 14x14 (mask_roi_size, the box head's sampling and alignment) from P2-P5,
    4 convs of 256 + deconv -> 28x28. C4: the mask head reads the box head's res5 output of
    each RoI (7x7) through a deconv -> 14x14 (mask_num_convs=0, as the zoo's C4 rows).
    Training uses the sampled positive RoIs (at most roi_batch_per_image x
    roi_positive_fraction per image) and their ground-truth class's mask logits.
    """

    def __init__(self, num_classes=80, mask_roi_size=14, mask_num_convs=4, mask_conv_dim=256,
                 **kwargs):
        super().__init__(num_classes=num_classes, **kwargs)
        self.config = dict(self.config, mask_roi_size=mask_roi_size,
                           mask_num_convs=mask_num_convs, mask_conv_dim=mask_conv_dim)
        self.mask_head = MaskHead(num_classes, mask_num_convs, mask_conv_dim, name="mask_head")
        if self.config["neck"] == "c4":
            channels = self.box_head.stage.output_shape[-1]
            size = (self.config["roi_size"] + 1) // 2
        else:
            channels, size = self.config["fpn_channels"], mask_roi_size
        self.mask_head.build((None, None, size, size, channels))
        self.mask_size = 2 * size  # the deconv doubles the RoI size

    def mask_logits(self, pyramid, boxes, training=False):
        """Mask logits [B, N, m, m, K + 1] for boxes [B, N, 4] in input pixels."""
        c = self.config
        if c["neck"] == "c4":
            pooled = self.roi_features(pyramid, boxes)
            _, _, features = self.box_head(pooled, training=training, return_features=True)
        else:
            features = ops.multilevel_roi_align(pyramid[:4], boxes, c["mask_roi_size"],
                                                min_level=2, sampling_ratio=c["sampling_ratio"],
                                                aligned=c["aligned"])
        return self.mask_head(features)

    # -- inference ---------------------------------------------------------------------------
    def call(self, images, training=False, image_sizes=None):
        *pyramid, rpn_logits, rpn_deltas = self.network(images, training=training)
        rois, valid = self.proposals(images, rpn_logits, rpn_deltas, training=False,
                                     image_sizes=image_sizes)
        logits, deltas = self.box_head(self.roi_features(pyramid, rois), training=training)
        detections = self.postprocess(images, rois, valid, logits, deltas, image_sizes)
        mask_logits = self.mask_logits(pyramid, tf.stop_gradient(detections["boxes"]),
                                       training=training)
        # Each detection's mask is the channel of its class (0 is the background).
        class_logits = tf.gather(tf.cast(mask_logits, tf.float32),
                                 detections["classes"] + 1, axis=4, batch_dims=2)
        detections["masks"] = tf.sigmoid(class_logits)
        return detections

    # -- training ----------------------------------------------------------------------------
    def compute_losses(self, batch, training=True):
        """Faster R-CNN's four losses plus mask_loss: per-pixel sigmoid cross-entropy of the
        ground-truth class's mask logits against the matched instance's mask cropped to the
        RoI (ops.mask_targets), averaged over the positive RoIs' pixels (over replicas)."""
        c = self.config
        gt = ground_truth(batch)
        *pyramid, rpn_logits, rpn_deltas = self.network(batch["images"], training=training)
        losses, sample = self.rpn_losses_and_rois(batch["images"], gt, rpn_logits, rpn_deltas)
        pooled = self.roi_features(pyramid, sample["rois"])

        max_positive = int(round(c["roi_batch_per_image"] * c["roi_positive_fraction"]))
        index, real = _select(tf.cast(sample["is_positive"], tf.float32), max_positive)
        boxes = tf.gather(sample["rois"], index, batch_dims=1)
        classes = tf.gather(sample["classes"], index, batch_dims=1)
        if c["neck"] == "c4":  # the mask head reads the box head's res5 maps of the positives
            logits, deltas, res5 = self.box_head(pooled, training=training,
                                                 return_features=True)
            mask_logits = self.mask_head(tf.gather(res5, index, batch_dims=1))
        else:
            logits, deltas = self.box_head(pooled, training=training)
            mask_logits = self.mask_logits(pyramid, boxes, training=training)
        losses.update(self.box_losses(logits, deltas, sample, gt))

        mask_logits = tf.gather(tf.cast(mask_logits, tf.float32), classes, axis=4,
                                batch_dims=2)  # [B, P, m, m]
        targets = ops.mask_targets(batch["masks"], boxes,
                                   tf.gather(sample["matched"], index, batch_dims=1),
                                   size=self.mask_size)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=mask_logits)
        real_f = tf.cast(real, tf.float32)
        count = tf.maximum(replica_mean(tf.reduce_sum(real_f)), 1.0) * self.mask_size**2
        losses["mask_loss"] = tf.reduce_sum(bce * real_f[..., None, None]) / count
        losses["total_loss"] = tf.add_n(list(losses.values()))
        return losses

    def get_config(self):
        return dict(self.config, name=self.name)
