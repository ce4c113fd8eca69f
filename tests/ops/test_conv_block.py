"""The one conv-norm-activation block: Paddle's padding, fused / separate activations, names."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet.layers.conv_block import conv_norm_act, conv_norm_act_layers


def test_strided_convs_pad_symmetrically_as_paddle_and_names_follow_the_block():
    x = tf.random.stateless_normal([1, 8, 8, 3], [0, 1])
    layers = conv_norm_act_layers(4, 3, 2, "b", norm="bn", act="leaky")
    assert [layer.name for layer in layers] == ["b_pad", "b_conv", "b_norm", "b_leaky"]
    out = x
    for layer in layers:
        out = layer(out)
    kernel = layers[1].kernel
    bn = layers[2]
    # Paddle: 1 zero on every side, then 'valid' (Keras' 'same' would pad 0 before, 1 after).
    ref = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), kernel, 2, "VALID")
    ref = (ref - bn.moving_mean) / tf.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta
    ref = tf.where(ref > 0, ref, 0.1 * ref)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)
    assert out.shape == (1, 4, 4, 4)


def test_without_a_norm_the_conv_has_a_bias_and_applies_relu_itself():
    inputs = keras.Input([6, 6, 2])
    out = conv_norm_act(inputs, 5, 3, 1, "c", norm=None, act="relu6")
    model = keras.Model(inputs, out)
    conv = model.get_layer("c_conv")
    assert conv.use_bias and [layer.name for layer in model.layers[1:]] == ["c_conv"]
    conv.bias.assign(tf.fill([5], 10.0))  # relu6 caps the output
    assert float(tf.reduce_max(model(tf.zeros([1, 6, 6, 2])))) == 6.0


def test_group_norm_uses_paddles_epsilon_and_bad_choices_are_named():
    layers = conv_norm_act_layers(32, 3, norm="gn")
    assert layers[1].epsilon == 1e-5 and layers[1].groups == 32
    with pytest.raises(ValueError, match="act must be one of"):
        conv_norm_act_layers(4, 3, act="gelu")
    with pytest.raises(ValueError, match="conv must be"):
        conv_norm_act_layers(4, 3, conv="sparse")
    with pytest.raises(ValueError, match="pads itself"):
        conv_norm_act_layers(4, 3, conv="dcn", pad=2)
