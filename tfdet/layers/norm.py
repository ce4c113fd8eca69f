"""Normalisation choices of the zoo's backbones and heads.

  affine     AffineChannel: y = scale * x + bias, frozen (PaddleDetection's ResNets; BN statistics
             folded in when converting pretrained weights)
  frozen_bn  BatchNormalization that never updates (moving statistics, trainable=False)
  bn         trainable BatchNormalization (what learns from random weights)
  sync_bn    BatchNormalization synchronised across replicas
  gn         GroupNormalization with 32 groups
"""
import math

import keras
from keras import ops

NORM_KINDS = ("affine", "frozen_bn", "bn", "sync_bn", "gn")


@keras.saving.register_keras_serializable("tfdet")
class AffineChannel(keras.layers.Layer):
    """Per-channel scale and bias on NHWC inputs (a batch norm with folded statistics)."""

    def build(self, input_shape):
        channels = input_shape[-1]
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        return inputs * ops.cast(self.scale, inputs.dtype) + ops.cast(self.bias, inputs.dtype)


def make_norm(kind, name, groups=32, momentum=0.9, epsilon=1e-5):
    """A norm layer of the given kind (see the module docstring)."""
    if kind == "affine":
        return AffineChannel(name=name, trainable=False)
    if kind in ("frozen_bn", "bn", "sync_bn"):
        return keras.layers.BatchNormalization(
            momentum=momentum, epsilon=epsilon, synchronized=kind == "sync_bn", name=name,
            trainable=kind != "frozen_bn")
    if kind == "gn":
        return keras.layers.GroupNormalization(groups=groups, epsilon=epsilon, name=name)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORM_KINDS}")


def count_params_without_norm_statistics(model):
    """Weights of a model less BatchNorm moving mean / variance (REFERENCE.md's count)."""
    total = 0
    for w in model.weights:
        if "moving_mean" in w.path or "moving_variance" in w.path:
            continue
        total += math.prod(w.shape)
    return total
