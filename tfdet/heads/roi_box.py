"""RoI box heads: pooled RoI features -> class logits and class-specific box deltas."""
import keras
from keras import ops

from tfdet.registry import ROI_BOX_HEADS


def _predictors(num_classes, class_agnostic=False):
    """The classifier over num_classes + 1 (index 0 = background) and the box regressor
    shared by every RoI box head: class-specific (num_classes + 1 deltas) or class-agnostic
    (2 deltas, background and foreground, as Paddle's cascade heads)."""
    classifier = keras.layers.Dense(
        num_classes + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        name="classifier")
    regressor = keras.layers.Dense(
        (2 if class_agnostic else num_classes + 1) * 4,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.001), name="regressor")
    return classifier, regressor


def _predict(head, x, batch, rois):
    """x [batch * rois, D] -> (logits [batch, rois, K + 1], deltas [batch, rois, K + 1, 4],
    or [batch, rois, 2, 4] when class-agnostic)."""
    k = head.num_classes + 1
    return (ops.reshape(head.classifier(x), (batch, rois, k)),
            ops.reshape(head.regressor(x), (batch, rois, head.regressor.units // 4, 4)))


@keras.saving.register_keras_serializable("tfdet")
class FCBoxHead(keras.layers.Layer):
    """`num_convs` 3x3 convs of `conv_dim` (+ norm) with ReLU, flatten, `num_fc` fully
    connected layers of `fc_dim` with ReLU (the '2fc' head: no convs, 2 fc; the GN rows'
    '4conv1fc': 4 convs with GroupNorm, 1 fc), then a classifier over num_classes + 1
    (index 0 = background) and class-specific deltas (class_agnostic: one foreground delta
    beside the background's, Paddle's cascade layout). norm: None, or a tfdet.layers.norm
    kind after each conv (its convs then have no bias, as Paddle's ConvNormLayer).

    Input [B, R, h, w, C]; returns (logits [B, R, K + 1], deltas [B, R, K + 1, 4], or
    [B, R, 2, 4] when class-agnostic).
    """

    feeds_mask_head = False  # a mask head pools its own RoI features

    def __init__(self, num_classes, fc_dim=1024, num_fc=2, class_agnostic=False, num_convs=0,
                 conv_dim=256, norm=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.fc_dim = fc_dim
        self.num_fc = num_fc
        self.class_agnostic = class_agnostic
        self.num_convs, self.conv_dim, self.norm = num_convs, conv_dim, norm
        self.convs = None
        if num_convs:
            from tfdet.layers.conv_block import conv_norm_act_layers
            layers = []
            for i in range(num_convs):
                layers += conv_norm_act_layers(
                    conv_dim, 3, name=f"conv{i + 1}", norm=norm,
                    kernel_initializer=keras.initializers.HeNormal(), conv_name=f"conv{i + 1}")
            self.convs = keras.Sequential(layers, name="convs")
        self.fcs = keras.Sequential(
            [keras.layers.Dense(fc_dim, activation="relu", name=f"fc{i + 1}")
             for i in range(num_fc)], name="fcs")
        self.classifier, self.regressor = _predictors(num_classes, class_agnostic)

    def build(self, input_shape):
        channels = input_shape[4]
        if self.convs is not None:
            self.convs.build((None, input_shape[2], input_shape[3], channels))
            channels = self.conv_dim
        self.fcs.build((None, input_shape[2] * input_shape[3] * channels))
        self.classifier.build((None, self.fc_dim))
        self.regressor.build((None, self.fc_dim))

    def call(self, pooled):
        shape = ops.shape(pooled)
        x = ops.reshape(pooled, (shape[0] * shape[1], shape[2], shape[3], shape[4]))
        if self.convs is not None:
            x = self.convs(x)
        x = ops.reshape(x, (shape[0] * shape[1], -1))
        return _predict(self, self.fcs(x), shape[0], shape[1])

    def get_config(self):
        return dict(super().get_config(), num_classes=self.num_classes, fc_dim=self.fc_dim,
                    num_fc=self.num_fc, class_agnostic=self.class_agnostic,
                    num_convs=self.num_convs, conv_dim=self.conv_dim, norm=self.norm)


@keras.saving.register_keras_serializable("tfdet")
class Res5BoxHead(keras.layers.Layer):
    """The C4 models' RoI head: a ResNet stage (`stage`, a Keras model, e.g. res5) on each RoI,
    global average pooling, then the classifier over num_classes + 1 and class-specific
    deltas. Input [B, R, h, w, C]; returns (logits [B, R, K + 1], deltas [B, R, K + 1, 4]).
    Its res5 maps of each RoI are the C4 mask head's input (feeds_mask_head)."""

    feeds_mask_head = True
    class_agnostic = False

    def __init__(self, stage, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.stage = stage
        self.num_classes = num_classes
        self.classifier, self.regressor = _predictors(num_classes)

    @property
    def feature_channels(self):
        """Channels of the res5 maps (return_features)."""
        return self.stage.output_shape[-1]

    @staticmethod
    def feature_size(roi_size):
        """Side of the res5 maps of a roi_size x roi_size RoI (its first block has stride 2)."""
        return (roi_size + 1) // 2

    def build(self, input_shape):
        channels = self.stage.output_shape[-1]
        self.classifier.build((None, channels))
        self.regressor.build((None, channels))

    def call(self, pooled, training=False, return_features=False):
        """return_features: also the res5 maps [B, R, h', w', C'] (the C4 mask head's input)."""
        shape = ops.shape(pooled)
        x = ops.reshape(pooled, (shape[0] * shape[1], shape[2], shape[3], shape[4]))
        features = self.stage(x, training=training)
        outputs = _predict(self, ops.mean(features, axis=(1, 2)), shape[0], shape[1])
        if not return_features:
            return outputs
        size = ops.shape(features)
        return (*outputs, ops.reshape(features, (shape[0], shape[1], size[1], size[2],
                                                 size[3])))


@ROI_BOX_HEADS.register("fc")
def fc_box_head(settings, num_classes, channels, name="box_head", class_agnostic=False):
    """The registered 'fc' head: FCBoxHead with box_head_convs convs (head_norm) and
    box_head_fcs fcs of fc_dim, built for roi_size RoIs of `channels`."""
    head = FCBoxHead(num_classes, settings["fc_dim"], settings["box_head_fcs"],
                     class_agnostic=class_agnostic, num_convs=settings["box_head_convs"],
                     conv_dim=channels, norm=settings["head_norm"], name=name)
    head.build((None, None, settings["roi_size"], settings["roi_size"], channels))
    return head


@ROI_BOX_HEADS.register("res5")
def res5_box_head(settings, num_classes, channels, name="box_head", class_agnostic=False):
    """The registered 'res5' head (C4): the ResNet's stage 5 (depth, variant, groups,
    group_width, norm) on each RoI, then the class-specific predictors."""
    from tfdet.backbones.resnet import resnet_stage
    if class_agnostic:
        raise ValueError("box_head 'res5' regresses a box per class; class-agnostic heads "
                         "(the cascades') are 'fc'")
    stage = resnet_stage(5, channels, settings["depth"], settings["variant"],
                         settings["groups"], settings["group_width"], settings["norm"])
    head = Res5BoxHead(stage, num_classes, name=name)
    head.build((None, None, settings["roi_size"], settings["roi_size"], channels))
    return head

