"""Region proposal network head (Ren et al. 2015), shared over pyramid levels."""
import keras
from keras import ops

from tfdet.layers.conv_block import initializer


@keras.saving.register_keras_serializable("tfdet")
class RPNHead(keras.layers.Layer):
    """3x3 conv + ReLU, then 1x1 convs to one objectness logit and 4 deltas per anchor.

    Called on a list of levels [B, H_l, W_l, C]; returns (objectness logits [B, N], deltas
    [B, N, 4]) with N = sum_l H_l * W_l * A, rows level-major then row-major cells then
    anchors, the order of `ops.AnchorGenerator`.
    """

    def __init__(self, num_anchors=3, channels=256, **kwargs):
        super().__init__(**kwargs)
        self.num_anchors = num_anchors
        self.channels = channels
        init = initializer("RandomNormal", stddev=0.01)
        self.conv = keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                        kernel_initializer=init, name="conv")
        self.objectness = keras.layers.Conv2D(num_anchors, 1, kernel_initializer=init,
                                              name="objectness")
        self.deltas = keras.layers.Conv2D(num_anchors * 4, 1, kernel_initializer=init,
                                          name="deltas")

    def build(self, input_shape):
        shape = tuple(input_shape[0])
        self.conv.build(shape)
        shape = self.conv.compute_output_shape(shape)
        self.objectness.build(shape)
        self.deltas.build(shape)

    def call(self, features):
        logits, deltas = [], []
        for feature in features:
            x = self.conv(feature)
            batch = ops.shape(feature)[0]
            logits.append(ops.reshape(self.objectness(x), (batch, -1)))
            deltas.append(ops.reshape(self.deltas(x), (batch, -1, 4)))
        return ops.concatenate(logits, axis=1), ops.concatenate(deltas, axis=1)

    def get_config(self):
        return dict(super().get_config(), num_anchors=self.num_anchors, channels=self.channels)
