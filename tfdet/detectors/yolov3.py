"""YOLOv3 (Redmon and Farhadi 2018) as PaddleDetection's yolov3_darknet: DarkNet-53,
MobileNetV1 or ResNet-34 C3-C5, the three-level YOLOv3 neck, 1x1 output convs with 3 anchors
per level and sigmoid objectness / classes.

`model(images)` takes normalised images [B, H, W, 3] (H, W multiples of 32; any size, so one
set of weights serves 608, 416 and 320) and returns the detection dict: boxes
[B, max_detections, 4] xyxy input pixels, scores (objectness x class), classes int32,
num_detections int32. `compute_losses(batch)` is the zoo's YOLOv3 loss; a batch may carry
`scores` [B, M] (mixup weights of the boxes, 1 by default).
"""

import keras
import tensorflow as tf

from tfdet import ops
from tfdet.backbones import darknet53, mobilenet_v1, resnet
from tfdet.detectors.ground_truth import ground_truth
from tfdet.detectors.dense import DenseDetector
from tfdet.heads import yolo_head
from tfdet.necks import yolo_fpn
from tfdet.registry import POSTPROCESSORS, DETECTORS, YOLO_BACKBONES


@YOLO_BACKBONES.register("darknet53")
def _darknet53(c):
    body = darknet53(c["norm"])
    return body.input, list(body.outputs)


@YOLO_BACKBONES.register("mobilenet_v1")
def _mobilenet_v1(c):
    body = mobilenet_v1(c["width"], c["norm"], feature_blocks=c["mobilenet_blocks"])
    return body.input, list(body.outputs)


@YOLO_BACKBONES.register("resnet")
def _resnet(c):
    body = resnet(c["depth"], c["variant"], norm=c["norm"], freeze_at=0,
                  dcn_stages=c["dcn_stages"])
    return body.input, list(body.outputs[1:])


COCO_ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90),
                (156, 198), (373, 326))
ANCHOR_MASKS = ((6, 7, 8), (3, 4, 5), (0, 1, 2))  # coarse (stride 32) to fine (stride 8)


def _sigmoid_ce(logits, labels):
    labels = tf.broadcast_to(tf.cast(labels, logits.dtype), tf.shape(logits))
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)


@DETECTORS.register("yolov3")
@keras.saving.register_keras_serializable("tfdet")
class YOLOv3(DenseDetector):
    """YOLOv3; see the module docstring. backbone: a name in tfdet.registry.YOLO_BACKBONES:
    'darknet53', 'mobilenet_v1' or 'resnet' (with `depth`, 34 in the zoo). mobilenet_blocks:
    the MobileNetV1 blocks giving C3, C4, C5 (the static zoo's (5, 11, 13); ppdet 2.x weights use (4, 6, 13)). variant / dcn_stages: the
    ResNet's ('d' and (5,) for the zoo's R50-vd-DCN)."""

    def __init__(self, num_classes=80, backbone="darknet53", depth=34, norm="bn", width=1.0,
                 anchors=COCO_ANCHORS, anchor_masks=ANCHOR_MASKS, ignore_iou=0.7,
                 label_smooth=True, conf_threshold=0.005, score_threshold=0.01, nms_iou=0.45,
                 pre_nms_top_k=1000, max_detections=100, objectness_prior=0.01,
                 mobilenet_blocks=(5, 11, 13), variant="b", dcn_stages=(), **kwargs):
        super().__init__(**kwargs)
        config = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        config["anchors"] = tuple(tuple(float(v) for v in a) for a in anchors)
        config["anchor_masks"] = tuple(tuple(int(i) for i in m) for m in anchor_masks)
        config["mobilenet_blocks"] = tuple(int(b) for b in mobilenet_blocks)
        config["dcn_stages"] = tuple(int(v) for v in dcn_stages)
        self.config = config
        self.postprocessor = POSTPROCESSORS.get("hard")(config)
        self.num_classes = num_classes
        body_input, features = YOLO_BACKBONES.get(backbone)(config)
        tips = yolo_fpn(list(features), norm)
        outputs = yolo_head(tips, config["anchor_masks"], num_classes, objectness_prior)
        self.network = keras.Model(body_input, outputs, name="yolov3_network")

    def level_outputs(self, images, training=False):
        """Per level (stride 32, 16, 8): raw outputs [B, H, W, A, 5 + K] (x, y, w, h,
        objectness, classes), float32."""
        outputs = self.raw_outputs(images, training=training)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        shaped = []
        for out, mask in zip(outputs, self.config["anchor_masks"]):
            s = tf.shape(out)
            shaped.append(tf.reshape(tf.cast(out, tf.float32),
                                     [s[0], s[1], s[2], len(mask), 5 + self.num_classes]))
        return shaped

    def decode(self, out, level, height):
        """Boxes [B, H, W, A, 4] xyxy input pixels of one level's raw outputs."""
        grid_h, grid_w = tf.shape(out)[1], tf.shape(out)[2]
        stride = tf.cast(height, tf.float32) / tf.cast(grid_h, tf.float32)
        anchors = tf.constant([self.config["anchors"][i]
                               for i in self.config["anchor_masks"][level]], tf.float32)
        gy, gx = tf.meshgrid(tf.range(grid_h), tf.range(grid_w), indexing="ij")
        cx = (tf.sigmoid(out[..., 0]) + tf.cast(gx, tf.float32)[None, :, :, None]) * stride
        cy = (tf.sigmoid(out[..., 1]) + tf.cast(gy, tf.float32)[None, :, :, None]) * stride
        w = tf.exp(tf.minimum(out[..., 2], 10.0)) * anchors[:, 0]
        h = tf.exp(tf.minimum(out[..., 3], 10.0)) * anchors[:, 1]
        return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)

    # -- inference ---------------------------------------------------------------------------
    def call(self, images, training=False, image_sizes=None):
        """image_sizes: optional [B, 2] (h, w) in input pixels to clip boxes to before NMS,
        else the input's size. (Paddle's yolo_box clips to the original image's last pixel,
        (size - 1) in original pixels: pass that limit scaled to the input to reproduce it.)"""
        c = self.config
        height = tf.shape(images)[1]
        boxes, scores = [], []
        for level, out in enumerate(self.level_outputs(images, training)):
            batch = tf.shape(out)[0]
            boxes.append(tf.reshape(self.decode(out, level, height), [batch, -1, 4]))
            objectness = tf.sigmoid(out[..., 4:5])
            # Paddle's yolo_box: predictions under conf_threshold objectness are dropped.
            objectness *= tf.cast(objectness >= c["conf_threshold"], tf.float32)
            scores.append(tf.reshape(objectness * tf.sigmoid(out[..., 5:]),
                                     [batch, -1, self.num_classes]))
        boxes = ops.clip_boxes(tf.concat(boxes, 1), *ops.clip_limits(images, image_sizes))
        return self.multiclass_nms(boxes, tf.concat(scores, 1))

    # -- training ----------------------------------------------------------------------------
    def compute_losses(self, batch, training=True):
        """The zoo's YOLOv3 loss, summed over levels and predictions and averaged over images:

        each ground truth goes to the cell holding its centre, at the level and anchor of the
        best of all 9 anchors by shape IoU; there x, y get sigmoid CE towards the offset in the
        cell, w, h L1 towards log(size / anchor), both weighted by 2 - w * h (normalised
        size); objectness gets sigmoid CE towards 1, classes sigmoid CE towards the smoothed
        one-hot (1 - d / d with d = min(1 / K, 1 / 40)); all weighted by the box's score
        (mixup). Other predictions get objectness CE towards 0 unless their box overlaps a
        ground truth by IoU > ignore_iou. Crowd boxes and padding are ignored."""
        c = self.config
        images = batch["images"]
        height = tf.cast(tf.shape(images)[1], tf.float32)
        width = tf.cast(tf.shape(images)[2], tf.float32)
        truth = ground_truth(batch)
        gt = truth["boxes"]
        # Empty boxes too are skipped: log(w / anchor) needs w > 0.
        valid = truth["valid"] & (gt[..., 2] > gt[..., 0]) & (gt[..., 3] > gt[..., 1])
        gt_scores = tf.cast(batch.get("scores", tf.ones_like(gt[..., 0])), tf.float32)
        classes = truth["classes"]
        gw, gh = gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
        gx, gy = (gt[..., 0] + gt[..., 2]) / 2, (gt[..., 1] + gt[..., 3]) / 2
        anchors = tf.constant(c["anchors"], tf.float32)  # [9, 2]
        inter = (tf.minimum(gw[..., None], anchors[:, 0]) * tf.minimum(gh[..., None],
                                                                       anchors[:, 1]))
        shape_iou = inter / (gw[..., None] * gh[..., None] + anchors[:, 0] * anchors[:, 1]
                             - inter)
        best = tf.argmax(shape_iou, -1, output_type=tf.int32)  # [B, M]
        smooth = min(1.0 / self.num_classes, 1.0 / 40) if c["label_smooth"] else 0.0
        class_targets = tf.one_hot(classes, self.num_classes) * (1 - 2 * smooth) + smooth
        box_weight = 2.0 - gw * gh / (width * height)

        losses = {"xy_loss": 0.0, "wh_loss": 0.0, "objectness_loss": 0.0, "class_loss": 0.0}
        for level, out in enumerate(self.level_outputs(images, training)):
            mask = c["anchor_masks"][level]
            grid_h, grid_w = tf.shape(out)[1], tf.shape(out)[2]
            stride = height / tf.cast(grid_h, tf.float32)
            num_anchors = len(mask)
            # Ground truth assigned here: its best anchor is one of this level's.
            local = tf.fill(tf.shape(best), -1)
            for a, index in enumerate(mask):
                local = tf.where(best == index, a, local)
            assigned = valid & (local >= 0)
            col = tf.clip_by_value(tf.cast(tf.floor(gx / stride), tf.int32), 0, grid_w - 1)
            row = tf.clip_by_value(tf.cast(tf.floor(gy / stride), tf.int32), 0, grid_h - 1)
            where = tf.where(assigned)  # [P, 2]: (image, box)
            b = tf.cast(where[:, 0], tf.int32)
            at = lambda t: tf.gather_nd(t, where)  # noqa: E731
            cells = tf.stack([b, at(row), at(col), at(local)], 1)  # [P, 4]
            anchor_wh = tf.gather(anchors, tf.gather(tf.constant(mask), at(local)))
            targets = tf.concat([
                tf.stack([at(gx) / stride - tf.cast(at(col), tf.float32),
                          at(gy) / stride - tf.cast(at(row), tf.float32),
                          tf.math.log(at(gw) / anchor_wh[:, 0]),
                          tf.math.log(at(gh) / anchor_wh[:, 1]),
                          at(box_weight), at(gt_scores)], 1),
                at(class_targets)], 1)  # [P, 6 + K]
            dense_shape = tf.stack([tf.shape(out)[0], grid_h, grid_w, num_anchors])
            dense = tf.scatter_nd(cells, targets, tf.concat([dense_shape, [6 +
                                                                          self.num_classes]],
                                                            0))
            positive = tf.scatter_nd(cells, tf.ones_like(b, tf.float32), dense_shape) > 0
            weight = tf.where(positive, dense[..., 4] * dense[..., 5], 0.0)  # (2 - wh) * score
            score = tf.where(positive, dense[..., 5], 0.0)
            losses["xy_loss"] += tf.reduce_sum(
                (_sigmoid_ce(out[..., 0], dense[..., 0]) + _sigmoid_ce(out[..., 1],
                                                                       dense[..., 1])) * weight)
            losses["wh_loss"] += tf.reduce_sum(
                (tf.abs(out[..., 2] - dense[..., 2]) + tf.abs(out[..., 3] - dense[..., 3]))
                * weight)
            # Objectness: positives towards 1 (weighted by score), negatives towards 0 unless
            # their decoded box overlaps some ground truth by more than ignore_iou.
            decoded = tf.stop_gradient(self.decode(out, level, height))
            flat = tf.reshape(decoded, [tf.shape(out)[0], -1, 4])
            iou = ops.box_iou(flat, gt) * tf.cast(valid, tf.float32)[:, None, :]
            ignored = tf.reshape(tf.reduce_max(iou, -1) > c["ignore_iou"], dense_shape)
            negative = ~positive & ~ignored
            losses["objectness_loss"] += tf.reduce_sum(
                _sigmoid_ce(out[..., 4], 1.0) * score
                + _sigmoid_ce(out[..., 4], 0.0) * tf.cast(negative, tf.float32))
            losses["class_loss"] += tf.reduce_sum(
                tf.reduce_sum(_sigmoid_ce(out[..., 5:], dense[..., 6:]), -1) * score)
        images_here = tf.cast(tf.shape(images)[0], tf.float32)
        losses = {k: v / images_here for k, v in losses.items()}
        losses["total_loss"] = tf.add_n(list(losses.values()))
        return losses
