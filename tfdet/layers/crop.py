"""Crops a map to another's height and width (top-left kept), for maps whose sizes are known
only when the graph runs: BlazeFace-FPN's upsampled stride-16 map against an odd stride-8
map, as Paddle's nearest resize to the smaller size drops the last row / column.

    [x [B, H, W, C], reference [B, h, w, C']] -> x[:, :h, :w]  (h <= H, w <= W)
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable("tfdet")
class CropToMatch(keras.layers.Layer):
    """[x, reference] -> x cropped to reference's spatial size (see the module docstring)."""

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)
        return x[:, :size[1], :size[2]]

    def compute_output_shape(self, shapes):
        x, reference = shapes
        return (x[0], reference[1], reference[2], x[3])
