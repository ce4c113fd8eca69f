"""Sigmoid focal loss (Lin et al. 2017)."""
import tensorflow as tf


def sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """Element-wise focal loss: logits and {0, 1} targets of the same shape -> same shape.

    FL = -alpha_t (1 - p_t)^gamma log(p_t); alpha < 0 disables the alpha weighting.
    """
    logits = tf.convert_to_tensor(logits, tf.float32)
    targets = tf.cast(targets, logits.dtype)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    p = tf.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * tf.pow(1 - p_t, gamma)
    if alpha >= 0:
        loss *= alpha * targets + (1 - alpha) * (1 - targets)
    return loss
