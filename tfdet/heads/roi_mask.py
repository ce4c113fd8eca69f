"""RoI mask head (He et al. 2017): pooled RoI features -> per-class mask logits."""
import keras
from keras import ops

from tfdet.layers.conv_block import conv_norm_act_layers, initializer


@keras.saving.register_keras_serializable("tfdet")
class MaskHead(keras.layers.Layer):
    """`num_convs` 3x3 convs of `conv_dim` with ReLU (norm: None, or a tfdet.layers.norm kind
    after each conv, whose conv then has no bias: the GN rows), a 2x2 stride-2 transposed conv of
    `conv_dim` with ReLU, then a 1x1 conv to num_classes + 1 mask logits (index 0 is the
    background, as the classifier's; the loss and inference read the RoI's own class).

    FPN models: 4 convs on 14x14 RoIs -> 28x28 masks. C4 models: no convs, on the res5
    output of the box head (7x7) -> 14x14 masks.
    Input [B, R, h, w, C]; returns [B, R, 2h, 2w, num_classes + 1] logits.
    """

    def __init__(self, num_classes, num_convs=4, conv_dim=256, norm=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_convs = num_convs
        self.conv_dim = conv_dim
        self.norm = norm
        init = initializer("HeNormal")  # MSRA fan-in, as the zoo's mask head
        layers = []
        for i in range(num_convs):
            layers += conv_norm_act_layers(conv_dim, 3, name=f"conv{i + 1}", norm=norm,
                                           kernel_initializer=init, conv_name=f"conv{i + 1}")
        layers.append(keras.layers.Conv2DTranspose(conv_dim, 2, strides=2, activation="relu",
                                                   kernel_initializer=init, name="deconv"))
        layers.append(keras.layers.Conv2D(num_classes + 1, 1, kernel_initializer=init,
                                          name="mask_logits"))
        self.layers_ = keras.Sequential(layers, name="mask_layers")

    def build(self, input_shape):
        self.layers_.build((None, input_shape[2], input_shape[3], input_shape[4]))

    def call(self, pooled):
        shape = ops.shape(pooled)
        x = ops.reshape(pooled, (shape[0] * shape[1], shape[2], shape[3], shape[4]))
        logits = self.layers_(x)
        out = ops.shape(logits)
        return ops.reshape(logits, (shape[0], shape[1], out[1], out[2], out[3]))

    def get_config(self):
        return dict(super().get_config(), num_classes=self.num_classes,
                    num_convs=self.num_convs, conv_dim=self.conv_dim, norm=self.norm)
