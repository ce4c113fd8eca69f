"""The padded ground truth of a pipeline batch, as every detector's loss reads it."""
import tensorflow as tf


def ground_truth(batch):
    """boxes [B, M, 4] float32 xyxy, classes [B, M] int32 (padding -> 0) and valid [B, M]
    bool (neither padding, class -1, nor a crowd region): what may match a prediction."""
    return {"boxes": tf.cast(batch["boxes"], tf.float32),
            "classes": tf.maximum(batch["classes"], 0),
            "valid": (batch["classes"] >= 0) & ~tf.cast(batch["is_crowd"], tf.bool)}
