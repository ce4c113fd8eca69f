"""Box regression losses."""
import tensorflow as tf

from tfdet.ops import boxes as box_ops


def smooth_l1_loss(predictions, targets, beta=1.0 / 9):
    """Element-wise smooth L1 (Huber / beta): 0.5 x^2 / beta below beta, |x| - 0.5 beta above.
    beta = 0 is plain L1."""
    diff = tf.abs(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32))
    if beta <= 0:
        return diff
    return tf.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def iou_loss(pred_boxes, target_boxes, kind="giou"):
    """1 - IoU / GIoU / DIoU / CIoU of matching xyxy boxes [..., 4] -> [...]."""
    return 1.0 - box_ops.elementwise_box_iou(pred_boxes, target_boxes, kind=kind)
