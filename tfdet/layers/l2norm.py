"""L2 normalisation over channels with a learned per-channel scale (SSD's conv4_3 norm)."""
import keras
from keras import ops


@keras.saving.register_keras_serializable("tfdet")
class L2Normalization(keras.layers.Layer):
    """x / ||x||_2 over the channel axis, times a learned scale per channel (initially
    `init_scale`, 20 in SSD). [B, H, W, C] -> [B, H, W, C]."""

    def __init__(self, init_scale=20.0, epsilon=1e-10, **kwargs):
        super().__init__(**kwargs)
        self.init_scale = float(init_scale)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init_scale))

    def call(self, x):
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True),
                                    self.epsilon))
        return x / norm * ops.cast(self.scale, x.dtype)

    def get_config(self):
        return dict(super().get_config(), init_scale=self.init_scale, epsilon=self.epsilon)
