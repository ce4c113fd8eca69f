"""Normalisation choices of the zoo's backbones and heads.

  affine     AffineChannel: y = scale * x + bias, frozen (PaddleDetection's ResNets; BN statistics
             folded in when converting pretrained weights)
  frozen_bn  BatchNormalization that never updates (moving statistics, trainable=False)
  bn         trainable BatchNormalization (what learns from random weights)
  sync_bn    BatchNormalization synchronised across replicas
  gn         GroupNormalization with 32 groups

BatchNorm and GroupNorm are Keras' layers (same weights, same names, same results to float
rounding) with cheaper TensorFlow graphs: BatchNorm runs as one FusedBatchNormV3 op (oneDNN's
kernel on CPU, cuDNN's on GPU) instead of Keras' moments + normalise ops, and GroupNorm's
gradient is written out (two reductions and one elementwise pass) instead of being derived op by
op. Training steps of R18 RetinaNets on a 2-core Zen 4: trainable BN at 128 px 0.38 -> 0.33 s,
the quickstart's GN at 160 px 0.61 -> 0.50 s, first steps (tracing) 4 s shorter (BENCHMARKS.md,
"Norm layers as fewer, fused ops").
"""
import math

import keras
import tensorflow as tf
from keras import ops

NORM_KINDS = ("affine", "frozen_bn", "bn", "sync_bn", "gn")


@keras.saving.register_keras_serializable("tfdet")
class AffineChannel(keras.layers.Layer):
    """Per-channel scale and bias on NHWC inputs (a batch norm with folded statistics)."""

    folded = False  # fold(): the scale went into the conv before it

    def fold(self, shift):
        """From now on a bias add of shift [C] (tfdet.export.fold_norms)."""
        self.bias.assign(shift)
        self.folded = True

    def build(self, input_shape):
        channels = input_shape[-1]
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        if self.folded:
            return tf.nn.bias_add(inputs, ops.cast(self.bias, inputs.dtype))
        return inputs * ops.cast(self.scale, inputs.dtype) + ops.cast(self.bias, inputs.dtype)


@keras.saving.register_keras_serializable("tfdet")
class BatchNorm(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization as one fused op on NHWC float32 inputs (any other case,
    synchronised BN or renorm included, takes Keras' own path). Training updates the moving
    statistics with the biased batch variance, as Keras (and Paddle) do."""

    folded = False  # fold(): the statistics and scale went into the conv before it

    def fold(self, shift):
        """From now on a bias add of shift [C] (beta) at inference (tfdet.export.fold_norms)."""
        self.beta.assign(shift)
        self.folded = True

    def call(self, inputs, training=None, mask=None):
        if self.folded:
            if training and self.trainable:
                raise ValueError(f"{self.name} was folded into its conv for inference "
                                 f"(tfdet.export.fold_norms): it cannot train")
            return tf.nn.bias_add(inputs, tf.cast(self.beta, inputs.dtype))
        if (mask is not None or self.synchronized or self.renorm or len(inputs.shape) != 4
                or self.axis not in (-1, 3) or inputs.dtype != tf.float32):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        if not (training and self.trainable):
            return tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=self.epsilon, is_training=False).y
        empty = tf.zeros([0])
        out = tf.raw_ops.FusedBatchNormV3(x=inputs, scale=gamma, offset=beta, mean=empty,
                                         variance=empty, epsilon=self.epsilon,
                                         is_training=True)
        # The op's batch_variance carries Bessel's correction (n / (n - 1)); Keras' is biased
        # (0 for a single value).
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = out.batch_variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
        self.moving_mean.assign(
            self.moving_mean * self.momentum + out.batch_mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return out.y


def _group_norm(x, gamma, beta, groups, epsilon):
    """Group normalisation of x [N, ..., C] (C % groups == 0) over each image's positions and
    C / groups channels, then gamma * x + beta per channel; returns (y, gradient function) for
    tf.custom_gradient. The forward pass is two reductions and one multiply-add; the gradient
    two reductions and one elementwise pass. Static shapes keep the graph small."""
    c, size = x.shape[-1], x.shape[-1] // groups
    if x.shape[1:].is_fully_defined():
        positions = math.prod(x.shape[1:-1])
        out_shape = [-1, *x.shape[1:]]
    else:
        positions = tf.reduce_prod(tf.shape(x)[1:-1])
        out_shape = tf.shape(x)
    grouped = tf.reshape(x, [-1, positions, groups, size])  # [N, HW, G, C / G]
    count = tf.cast(positions * size, x.dtype)

    def group_sums(t):  # [N, HW, G, S] -> [N, 1, G, 1]
        return tf.reshape(tf.reduce_sum(tf.reduce_sum(t, 1), -1), [-1, 1, groups, 1])

    mean = group_sums(grouped) / count
    variance = tf.maximum(group_sums(tf.square(grouped)) / count - tf.square(mean), 0.0)
    rstd = tf.math.rsqrt(variance + epsilon)
    gamma = tf.reshape(gamma, [groups, size])
    scale = rstd * gamma  # y = x * scale + shift, per image and channel: [N, 1, G, S]
    shift = tf.reshape(beta, [groups, size]) - mean * scale
    y = tf.reshape(grouped * scale + shift, out_shape)

    def gradient(dy):
        dy = tf.reshape(dy, [-1, positions, groups, size])
        sum_dy = tf.reduce_sum(dy, 1, keepdims=True)  # [N, 1, G, S]
        # sum over positions of dy * x_hat, x_hat = (x - mean) * rstd
        sum_dy_xhat = rstd * (tf.reduce_sum(dy * grouped, 1, keepdims=True) - mean * sum_dy)
        mean_g = tf.reduce_sum(gamma * sum_dy, -1, keepdims=True) / count  # of dL/dx_hat
        mean_gx = tf.reduce_sum(gamma * sum_dy_xhat, -1, keepdims=True) / count  # of .. * x_hat
        # dx = rstd * (gamma * dy - mean_g - x_hat * mean_gx), as dy * a + x * b + c
        dx = (dy * scale + grouped * (-rstd * rstd * mean_gx)
              + rstd * (rstd * mean * mean_gx - mean_g))
        return (tf.reshape(dx, out_shape), tf.reshape(tf.reduce_sum(sum_dy_xhat, [0, 1]), [c]),
                tf.reshape(tf.reduce_sum(sum_dy, [0, 1]), [c]))

    return y, gradient


@keras.saving.register_keras_serializable("tfdet")
class GroupNorm(keras.layers.GroupNormalization):
    """keras.layers.GroupNormalization on channels-last float32 inputs with a written-out
    gradient when training (see _group_norm); other inputs take Keras' own path."""

    def call(self, inputs, training=None):
        if (self.axis not in (-1, len(inputs.shape) - 1) or inputs.dtype != tf.float32
                or len(inputs.shape) < 3):
            return super().call(inputs)
        channels = inputs.shape[-1]
        gamma = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones([channels])
        beta = tf.convert_to_tensor(self.beta) if self.center else tf.zeros([channels])
        if training:
            return tf.custom_gradient(lambda x, g, b: _group_norm(
                x, g, b, self.groups, self.epsilon))(inputs, gamma, beta)
        return _group_norm(inputs, gamma, beta, self.groups, self.epsilon)[0]


def make_norm(kind, name, groups=32, momentum=0.9, epsilon=1e-5):
    """A norm layer of the given kind (see the module docstring)."""
    if kind == "affine":
        return AffineChannel(name=name, trainable=False)
    if kind in ("frozen_bn", "bn", "sync_bn"):
        return BatchNorm(
            momentum=momentum, epsilon=epsilon, synchronized=kind == "sync_bn", name=name,
            trainable=kind != "frozen_bn")
    if kind == "gn":
        return GroupNorm(groups=groups, epsilon=epsilon, name=name)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORM_KINDS}")


def count_params_without_norm_statistics(model):
    """Weights of a model less BatchNorm moving mean / variance (REFERENCE.md's count)."""
    total = 0
    for w in model.weights:
        if "moving_mean" in w.path or "moving_variance" in w.path:
            continue
        total += math.prod(w.shape)
    return total
