"""The one-stage detectors' shared part (RetinaNet, SSD, YOLOv3; BlazeFace and FaceBoxes are
SSDs): a Keras `network` from images to raw per-anchor outputs, `postprocess` from those to
the detection dict, the positive-count loss normaliser and the final per-class NMS.
"""
import keras
import tensorflow as tf

from tfdet import ops
from tfdet.detectors.keras_training import KerasTrainingMixin
from tfdet.losses import replica_mean


class DenseDetector(KerasTrainingMixin, keras.Model):
    """Subclasses set `self.config` (with score_threshold, nms_iou, pre_nms_top_k and
    max_detections), `self.num_classes` and `self.network`, and define
    `postprocess(images, *raw_outputs)` and `compute_losses(batch, training)`."""

    def raw_outputs(self, images, training=False):
        """The network's raw outputs for normalised images [B, H, W, 3] (per-anchor logits
        and box deltas for RetinaNet and SSD, per-level maps for YOLOv3)."""
        return self.network(images, training=training)

    def call(self, images, training=False):
        return self.postprocess(images, *self.raw_outputs(images, training=training))

    def multiclass_nms(self, boxes, scores):
        """Detections from boxes [B, N, 4] xyxy and per-class scores [B, N, K]: per class the
        pre_nms_top_k best above score_threshold, NMS at nms_iou, max_detections per class,
        then the best max_detections over all classes (ops.batched_multiclass_nms)."""
        c = self.config
        return ops.batched_multiclass_nms(
            boxes, scores, iou_threshold=c["nms_iou"], score_threshold=c["score_threshold"],
            max_per_class=c["max_detections"], max_total=c["max_detections"],
            pre_nms_top_k=c["pre_nms_top_k"])

    @staticmethod
    def positive_count(positive):
        """The loss normaliser: the number of positives (a bool or 0 / 1 tensor), its mean
        over replicas under tf.distribute (so N replicas make one device's update), at
        least 1."""
        return tf.maximum(replica_mean(tf.reduce_sum(tf.cast(positive, tf.float32))), 1.0)

    def get_config(self):
        return dict(self.config, name=self.name)
