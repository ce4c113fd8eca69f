"""Max pooling padded as Paddle pads it: `pad` rows / columns on every side that never win
(-inf), then a valid window. Keras' 'same' pads a stride-2 3x3 pool of an even size at the
bottom / right only, which shifts every window by a pixel against Paddle's, and zero padding
before a 'valid' pool (as ResNet's stem after its ReLU) would win over negative inputs
(FaceBoxes pools the negated half of its CReLU).

    x [B, H, W, C] -> [B, (H + 2 pad - pool) // stride + 1, (W + ...) // stride + 1, C]
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable("tfdet")
class PaddedMaxPool2D(keras.layers.Layer):
    """Paddle's pool2d(pool_type='max', pool_padding=pad, ceil_mode=False) in NHWC."""

    def __init__(self, pool_size=3, strides=2, pad=1, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides, self.pad = int(pool_size), int(strides), int(pad)

    def call(self, x):
        p = self.pad
        x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=float("-inf"))
        return tf.nn.max_pool2d(x, self.pool_size, self.strides, "VALID")

    def compute_output_shape(self, shape):
        def out(n):
            return None if n is None else (n + 2 * self.pad - self.pool_size) // self.strides + 1
        return (shape[0], out(shape[1]), out(shape[2]), shape[3])

    def get_config(self):
        return dict(super().get_config(), pool_size=self.pool_size, strides=self.strides,
                    pad=self.pad)
