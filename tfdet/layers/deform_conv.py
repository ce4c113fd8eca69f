"""Deformable convolution v2 as a layer, built as PaddleDetection's ResNet DCN builds it."""
import keras
import tensorflow as tf

from tfdet.ops.deform_conv import deform_conv2d


@keras.saving.register_keras_serializable("tfdet")
class DeformableConv2D(keras.layers.Layer):
    """A k x k deformable convolution whose offsets (and, modulated, masks) come from a k x k
    offset conv of the same input and stride: 3 * k * k outputs per offset group for DCNv2
    (2 k k offsets in torchvision's dy, dx order, then k k mask logits through a sigmoid), 2 k k
    for DCNv1. The offset conv starts at zero weights and bias (ppdet's ConvNormLayer with
    dcn_v2), so a new DCNv2 layer computes half the plain convolution (masks sigmoid(0)). Its
    learning rate is the model's own: the static zoo's ResNet `_conv_offset` and ppdet 2.x's
    ConvNormLayer give the offset conv no learning-rate multiplier (1.0; only ppdet's head-side
    DeformableConvV2 takes an `lr_scale`, and its 2x applies to a DCN bias, which the ResNet
    rows do not have), so no per-variable rate is needed for the zoo's DCN rows. Pads
    (k - 1) // 2 * dilation on each side, the offset conv (k - 1) // 2, as Paddle does.
    [B, H, W, C] -> [B, ceil(H / stride), ceil(W / stride), filters] for odd k.

    groups: grouped convolution (ResNeXt); offset_groups: groups of input channels sampled at
    their own offsets. Weights: kernel [k, k, C / groups, filters], bias, offset_kernel
    [k, k, C, 3 G k k], offset_bias.
    """

    def __init__(self, filters, kernel_size=3, strides=1, dilation_rate=1, groups=1,
                 offset_groups=1, modulated=True, use_bias=False,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.dilation_rate = int(dilation_rate)
        self.groups = int(groups)
        self.offset_groups = int(offset_groups)
        self.modulated = bool(modulated)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        k = self.kernel_size
        taps = k * k * self.offset_groups
        self.kernel = self.add_weight(name="kernel",
                                      shape=(k, k, channels // self.groups, self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)
        outputs = (3 if self.modulated else 2) * taps
        self.offset_kernel = self.add_weight(name="offset_kernel",
                                             shape=(k, k, channels, outputs),
                                             initializer="zeros")
        self.offset_bias = self.add_weight(name="offset_bias", shape=(outputs,),
                                           initializer="zeros")

    def call(self, x):
        k, taps = self.kernel_size, self.kernel_size ** 2 * self.offset_groups
        pad = (k - 1) // 2
        kernel = tf.cast(self.offset_kernel, x.dtype)
        om = tf.nn.conv2d(x, kernel, self.strides, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        om = om + tf.cast(self.offset_bias, x.dtype)
        mask = tf.sigmoid(om[..., 2 * taps:]) if self.modulated else None
        return deform_conv2d(x, om[..., :2 * taps], tf.cast(self.kernel, x.dtype),
                             self.bias, mask, strides=self.strides,
                             padding=pad * self.dilation_rate, dilation=self.dilation_rate,
                             groups=self.groups)

    def compute_output_shape(self, input_shape):
        def side(n):
            return None if n is None else (n - 1) // self.strides + 1
        return (input_shape[0], side(input_shape[1]), side(input_shape[2]), self.filters)

    def get_config(self):
        return dict(super().get_config(), filters=self.filters, kernel_size=self.kernel_size,
                    strides=self.strides, dilation_rate=self.dilation_rate, groups=self.groups,
                    offset_groups=self.offset_groups, modulated=self.modulated,
                    use_bias=self.use_bias,
                    kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
