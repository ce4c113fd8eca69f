"""VGG16 as SSD's backbone (Liu et al. 2016, PaddleDetection's VGG): five conv blocks of 3x3
convs with ReLU, 2x2 / 2 max pools in ceil mode (300 -> 150 -> 75 -> 38 -> 19), pool5 3x3 / 1,
fc6 as a 3x3 conv dilated 6 with 1024 channels, fc7 a 1x1 conv of 1024. Convs have biases and
no norm, as in the original.
"""
import keras

_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def vgg16(input_size=None, name="vgg16"):
    """images [B, S, S, 3] -> [conv4_3 (stride 8, 512), fc7 (stride 16, 1024)].

    input_size: the static square size (SSD's fixed input), or None for any size."""
    images = keras.Input([input_size, input_size, 3], name="images")
    x = images
    outputs = []
    for block, (filters, convs) in enumerate(_BLOCKS, start=1):
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    name=f"conv{block}_{i}")(x)
        if block == 4:
            outputs.append(x)  # conv4_3, before its pool
        if block < 5:
            # 'same' on a 2x2 / 2 pool pads the end only: ceil mode.
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"pool{block}")(x)
        else:
            x = keras.layers.MaxPooling2D(3, 1, padding="same", name="pool5")(x)
    x = keras.layers.Conv2D(1024, 3, padding="same", dilation_rate=6, activation="relu",
                            name="fc6")(x)
    x = keras.layers.Conv2D(1024, 1, activation="relu", name="fc7")(x)
    outputs.append(x)
    return keras.Model(images, outputs, name=name)
