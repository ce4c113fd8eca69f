"""Loss normalisers that stay correct under tf.distribute."""
import tensorflow as tf


def replica_mean(value):
    """The mean of a scalar over the replicas in sync (the value itself on one replica).

    A loss divided by the replica mean of its positive count, then by the replica count,
    sums over replicas to the loss of the whole global batch divided by its positives: the
    same gradient as one device on the same global batch.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, value)


def positive_count(mask):
    """A loss normaliser: the number of set entries of `mask` (bool or 0 / 1), its
    replica_mean under tf.distribute, at least 1."""
    return tf.maximum(replica_mean(tf.reduce_sum(tf.cast(mask, tf.float32))), 1.0)
