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

    def top_k_per_level(self, logits, deltas, anchors, counts, by_anchor=False,
                        activation=tf.sigmoid):
        """Per pyramid level, the pre_nms_top_k best candidates, decoded by the coder.

        logits [B, N, K] (raw; `activation`, monotone, turns the kept ones into scores),
        deltas [B, N, 4], anchors [N, 4] xyxy, counts: each level's share of N.
        by_anchor=False: candidates are (anchor, class) pairs ranked by score; returns (boxes
        [B, n, 4], scores [B, n], classes [B, n] int32). True: anchors ranked by their best
        class score keep every class score; returns (boxes [B, n, 4], scores [B, n, K],
        None). n sums min(pre_nms_top_k, candidates) per level.

        Both rank the anchors by their best score first, from one max over the classes of the
        whole [B, N, K] tensor: the k best pairs of a level lie on its k best anchors (a pair
        outside them is beaten by those k anchors' best pairs), so the pairs are ranked among
        those anchors' k x K scores (taken in anchor order, which keeps top_k's lower-index-
        first order for ties). Nothing of size N x K is sliced, activated or sorted.
        """
        k = logits.shape[-1] or tf.shape(logits)[-1]
        logits = tf.cast(logits, tf.float32)
        deltas = tf.cast(deltas, tf.float32)
        best = activation(tf.reduce_max(logits, axis=-1))  # [B, N]
        boxes_all, scores_all, classes_all = [], [], []
        start = 0
        for count in counts:
            top_k = tf.minimum(self.config["pre_nms_top_k"], count)
            _, anchor_index = tf.math.top_k(best[:, start:start + count], top_k)
            if not by_anchor:
                anchor_index = tf.sort(anchor_index, axis=-1)
            candidates = activation(tf.gather(logits, start + anchor_index, batch_dims=1))
            if by_anchor:
                scores_all.append(candidates)
            else:
                pairs = tf.minimum(self.config["pre_nms_top_k"], count * k)
                top_scores, top_index = tf.math.top_k(
                    tf.reshape(candidates, [tf.shape(candidates)[0], -1]), pairs)
                anchor_index = tf.gather(anchor_index, top_index // k, batch_dims=1)
                scores_all.append(top_scores)
                classes_all.append(top_index % k)
            boxes_all.append(self.coder.decode(
                tf.gather(deltas, start + anchor_index, batch_dims=1),
                tf.gather(anchors[start:start + count], anchor_index)))
            start += count
        classes = None if by_anchor else tf.concat(classes_all, 1)
        return tf.concat(boxes_all, 1), tf.concat(scores_all, 1), classes

    def get_config(self):
        return dict(self.config, name=self.name)
