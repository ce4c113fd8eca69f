"""The one-stage detectors' shared part (RetinaNet, SSD, YOLOv3; BlazeFace and FaceBoxes are
SSDs): a Keras `network` from images to raw per-anchor outputs, `postprocess` from those to
the detection dict and the final per-class NMS (the loss normaliser is
tfdet.losses.positive_count).
"""
import keras

from tfdet import ops
from tfdet.detectors.keras_training import KerasTrainingMixin


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

    def get_config(self):
        return dict(self.config, name=self.name)
