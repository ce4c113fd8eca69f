"""Hard negative mining (SSD): the highest-loss negatives, a fixed multiple of the positives."""
import tensorflow as tf


def hard_negatives(negative_loss, positive, negative, ratio=3.0):
    """Mask [B, N] of the negatives to train on: per image, the ratio x (number of positives)
    negatives with the highest loss (all of them if fewer).

    negative_loss: [B, N] classification loss of each prior against the background;
    positive / negative: [B, N] bool candidate masks."""
    num_negatives = tf.cast(ratio * tf.reduce_sum(tf.cast(positive, tf.float32), axis=1),
                            tf.int32)
    loss = tf.where(negative, tf.stop_gradient(negative_loss), -1.0)
    # The rank of each prior by loss, descending: argsort of the argsort.
    order = tf.argsort(loss, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)
    return negative & (rank < num_negatives[:, None])
