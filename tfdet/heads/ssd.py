"""SSD's multibox head: per feature map, one conv for box deltas and one for class logits."""
import keras
from keras import ops


@keras.saving.register_keras_serializable("tfdet")
class SSDHead(keras.layers.Layer):
    """For map k: a kernel_size conv to A_k * 4 deltas and one to A_k * (num_classes + 1)
    logits (index 0 = background). Called on the list of maps [B, H_k, W_k, C_k]; returns
    (logits [B, N, K + 1], deltas [B, N, 4]), N = sum_k H_k * W_k * A_k in the order of
    `ops.ssd_priors` (maps, then row-major cells, then the cell's priors)."""

    def __init__(self, num_classes, priors_per_cell, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.priors_per_cell = tuple(int(a) for a in priors_per_cell)
        self.kernel_size = kernel_size
        k = num_classes + 1
        # One attribute per conv so each is tracked for checkpoints (the maps differ in
        # channels, so the convs are not one Sequential).
        self.box_convs, self.class_convs = [], []
        for i, a in enumerate(self.priors_per_cell):
            box = keras.layers.Conv2D(a * 4, kernel_size, padding="same", name=f"box{i}")
            cls = keras.layers.Conv2D(a * k, kernel_size, padding="same", name=f"class{i}")
            setattr(self, f"box{i}", box)
            setattr(self, f"class{i}", cls)
            self.box_convs.append(box)
            self.class_convs.append(cls)

    def build(self, input_shape):
        for shape, box, cls in zip(input_shape, self.box_convs, self.class_convs):
            box.build(tuple(shape))
            cls.build(tuple(shape))

    def call(self, features):
        logits, deltas = [], []
        for x, box, cls in zip(features, self.box_convs, self.class_convs):
            batch = ops.shape(x)[0]
            deltas.append(ops.reshape(box(x), (batch, -1, 4)))
            logits.append(ops.reshape(cls(x), (batch, -1, self.num_classes + 1)))
        return ops.concatenate(logits, axis=1), ops.concatenate(deltas, axis=1)

    def get_config(self):
        return dict(super().get_config(), num_classes=self.num_classes,
                    priors_per_cell=self.priors_per_cell, kernel_size=self.kernel_size)
