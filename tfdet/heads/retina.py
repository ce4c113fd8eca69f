"""RetinaNet head: classification and box towers shared across pyramid levels."""
import math

import keras
from keras import ops

from tfdet.layers.conv_block import conv_norm_act_layers, initializer


@keras.saving.register_keras_serializable("tfdet")
class RetinaNetHead(keras.layers.Layer):
    """Per level: 4 x (3x3 conv 256 + ReLU) then a 3x3 conv to A*K logits (class tower) and to
    A*4 deltas (box tower), weights shared across levels (Lin et al. 2017).

    call([P_l]) -> (class logits [B, sum_l H_l W_l A, K], box deltas [B, sum_l H_l W_l A, 4]),
    rows ordered level, cell (row-major), anchor, as tfdet.ops.AnchorGenerator lays them out.
    """

    def __init__(self, num_classes, num_anchors=9, channels=256, num_convs=4, prior=0.01,
                 norm=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.channels = channels
        self.num_convs = num_convs
        self.prior = prior
        self.norm = norm
        init = initializer("RandomNormal", stddev=0.01)

        def tower(prefix):
            layers = []
            for i in range(num_convs):
                layers += conv_norm_act_layers(
                    channels, 3, norm=norm, kernel_initializer=init,
                    conv_name=f"{prefix}_conv{i}", norm_name=f"{prefix}_gn{i}",
                    act_name=f"{prefix}_relu{i}")
            return layers

        # Sequential, not a plain list: checkpoints track layers, not Python lists of them.
        self.class_tower = keras.Sequential(tower("class"), name="class_tower")
        self.box_tower = keras.Sequential(tower("box"), name="box_tower")
        bias = -math.log((1 - prior) / prior)
        self.class_out = keras.layers.Conv2D(
            num_anchors * num_classes, 3, padding="same", kernel_initializer=init,
            bias_initializer=keras.initializers.Constant(bias), name="class_out")
        self.box_out = keras.layers.Conv2D(num_anchors * 4, 3, padding="same",
                                           kernel_initializer=init, name="box_out")

    def build(self, input_shape):
        shape = tuple(input_shape[0])
        self.class_tower.build(shape)
        self.box_tower.build(shape)
        shape = self.class_tower.compute_output_shape(shape)
        self.class_out.build(shape)
        self.box_out.build(shape)

    def call(self, features):
        logits, deltas = [], []
        for feature in features:
            x = self.class_tower(feature)
            y = self.box_tower(feature)
            batch = ops.shape(feature)[0]
            logits.append(ops.reshape(self.class_out(x), (batch, -1, self.num_classes)))
            deltas.append(ops.reshape(self.box_out(y), (batch, -1, 4)))
        return ops.concatenate(logits, axis=1), ops.concatenate(deltas, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, num_anchors=self.num_anchors,
                      channels=self.channels, num_convs=self.num_convs, prior=self.prior,
                      norm=self.norm)
        return config
