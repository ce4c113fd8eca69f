"""SSD's extra feature layers: after the backbone's last map, pairs of a 1x1 conv and a 3x3
(or k x k) conv with a stride, each adding one smaller map to predict from."""
from tfdet.layers.conv_block import conv_norm_act


def ssd_extra_layers(x, specs, norm=None, name="extra", activation="relu"):
    """specs: [[filters1, filters2, padding, stride, kernel], ...] as PaddleDetection's VGG
    (e.g. [256, 512, 1, 2, 3]: 1x1 conv of 256, then 3x3 / 2 conv of 512 with padding 1);
    [filters1, filters2] means padding 1, stride 2, kernel 3 (the MobileNet blocks).
    norm: None (convs with bias and ReLU, VGG) or a norm kind (conv, norm, activation).
    activation (with a norm): 'relu' (the static zoo) or 'relu6' (ppdet 2.x MobileNet).
    Returns the list of the extra maps."""
    if activation not in ("relu", "relu6"):
        raise ValueError(f"SSD extra layers: activation must be 'relu' or 'relu6', got "
                         f"{activation!r}")
    outputs = []
    for i, spec in enumerate(specs, start=1):
        filters1, filters2, padding, stride, kernel = (list(spec) + [1, 2, 3])[:5]
        for j, (filters, size, s, pad) in enumerate(((filters1, 1, 1, 0),
                                                     (filters2, kernel, stride, padding)),
                                                    start=1):
            layer = f"{name}{i}_{j}"
            x = conv_norm_act(x, filters, size, s, layer, norm=norm, act=activation, pad=pad)
        outputs.append(x)
    return outputs
