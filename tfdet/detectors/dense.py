"""The one-stage detectors' shared part (RetinaNet, SSD, YOLOv3; BlazeFace and FaceBoxes are
SSDs): a Keras `network` from images to raw per-anchor outputs, `postprocess` from those to
the detection dict, the per-level top-k decode and the final per-class NMS (the loss
normaliser is tfdet.losses.positive_count).
"""
import keras
import tensorflow as tf

import tfdet.detectors.parts  # noqa: F401 (registers the post-processors)
from tfdet.detectors.keras_training import KerasTrainingMixin


class DenseDetector(KerasTrainingMixin, keras.Model):
    """Subclasses set `self.config` (with score_threshold, nms_iou, pre_nms_top_k and
    max_detections), `self.num_classes`, `self.network`, `self.postprocessor` (boxes, scores
    -> detections; tfdet.registry.POSTPROCESSORS) and, for top_k_per_level, `self.coder`
    (ops.BoxCoder), and define `postprocess(images, *raw_outputs)` and
    `compute_losses(batch, training)`."""

    def raw_outputs(self, images, training=False):
        """The network's raw outputs for normalised images [B, H, W, 3] (per-anchor logits
        and box deltas for RetinaNet and SSD, per-level maps for YOLOv3)."""
        return self.network(images, training=training)

    def call(self, images, training=False):
        return self.postprocess(images, *self.raw_outputs(images, training=training))

    def multiclass_nms(self, boxes, scores):
        """Detections from boxes [B, N, 4] xyxy and per-class scores [B, N, K] by the
        post-processor (the registered 'hard': per class the pre_nms_top_k best above
        score_threshold, NMS at nms_iou, max_detections per class, then the best
        max_detections over all classes)."""
        return self.postprocessor(boxes, scores)

    def top_k_per_level(self, scores, deltas, anchors, counts, by_anchor=False):
        """Per pyramid level, the pre_nms_top_k best candidates, decoded by the coder.

        scores [B, N, K] (probabilities), deltas [B, N, 4], anchors [N, 4] xyxy, counts:
        each level's share of N. by_anchor=False: candidates are (anchor, class) pairs ranked
        by score; returns (boxes [B, n, 4], scores [B, n], classes [B, n] int32). True:
        anchors ranked by their best class score keep every class score; returns (boxes
        [B, n, 4], scores [B, n, K], None). n sums min(pre_nms_top_k, candidates) per level.
        """
        k = scores.shape[-1] or tf.shape(scores)[-1]
        deltas = tf.cast(deltas, tf.float32)
        batch = tf.shape(scores)[0]
        boxes_all, scores_all, classes_all = [], [], []
        start = 0
        for count in counts:
            level_scores = scores[:, start:start + count]
            if by_anchor:
                ranked = tf.reduce_max(level_scores, axis=-1)
            else:
                ranked = tf.reshape(level_scores, [batch, -1])
            top_k = tf.minimum(self.config["pre_nms_top_k"], tf.shape(ranked)[1])
            top_scores, top_index = tf.math.top_k(ranked, top_k)
            anchor_index = top_index if by_anchor else top_index // k
            boxes_all.append(self.coder.decode(
                tf.gather(deltas[:, start:start + count], anchor_index, batch_dims=1),
                tf.gather(anchors[start:start + count], anchor_index)))
            if by_anchor:
                scores_all.append(tf.gather(level_scores, anchor_index, batch_dims=1))
            else:
                scores_all.append(top_scores)
                classes_all.append(top_index % k)
            start += count
        classes = None if by_anchor else tf.concat(classes_all, 1)
        return tf.concat(boxes_all, 1), tf.concat(scores_all, 1), classes

    def get_config(self):
        return dict(self.config, name=self.name)
