"""Deformable convolution against torchvision.ops.deform_conv2d (forward and the gradients with
respect to input, offset, mask, weight and bias; fixtures from
scripts/make_torchvision_fixtures.py, float64 in torchvision, float32 here), against
tf.nn.conv2d at zero offsets, and under XLA."""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfdet import ops

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "deform_conv2d.npz"
DATA = np.load(FIXTURE)
META = json.loads(str(DATA["meta"]))["cases"]
TOLERANCE = 1e-4  # max abs difference at float32 (issue 12)


def _nhwc(a):
    return np.transpose(a, (0, 2, 3, 1))


def _case(name):
    get = lambda k: DATA[f"{name}/{k}"] if f"{name}/{k}" in DATA.files else None  # noqa: E731
    tensors = {
        "input": _nhwc(get("input")), "offset": _nhwc(get("offset")),
        "kernel": np.transpose(get("weight"), (2, 3, 1, 0)), "bias": get("bias"),
        "mask": _nhwc(get("mask")) if get("mask") is not None else None}
    return tensors, get


@pytest.mark.parametrize("name", sorted(META))
def test_matches_torchvision_values_and_gradients(name):
    tensors, get = _case(name)
    meta = META[name]
    variables = {k: tf.Variable(v.astype(np.float32)) for k, v in tensors.items()
                 if v is not None}
    with tf.GradientTape() as tape:
        out = ops.deform_conv2d(variables["input"], variables["offset"], variables["kernel"],
                                variables["bias"], variables.get("mask"),
                                strides=meta["stride"], padding=meta["padding"],
                                dilation=meta["dilation"], groups=meta["groups"])
        loss = tf.reduce_sum(out * _nhwc(get("cotangent")).astype(np.float32))
    np.testing.assert_allclose(out.numpy(), _nhwc(get("output")), atol=TOLERANCE, rtol=0)
    grads = tape.gradient(loss, variables)
    expected = {"input": _nhwc(get("grad_input")), "offset": _nhwc(get("grad_offset")),
                "kernel": np.transpose(get("grad_weight"), (2, 3, 1, 0)),
                "bias": get("grad_bias")}
    if "mask" in variables:
        expected["mask"] = _nhwc(get("grad_mask"))
    assert set(grads) == set(expected)
    for key, value in expected.items():
        got = tf.convert_to_tensor(grads[key]).numpy()
        np.testing.assert_allclose(got, value, atol=TOLERANCE, rtol=0, err_msg=key)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2),
                                                     ((2, 1), (0, 1), (1, 2))])
def test_zero_offsets_and_unit_mask_are_a_plain_convolution(stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 11, 4)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    ho = ops.deform_conv_output_size(9, 3, sh, ph, dh)
    wo = ops.deform_conv_output_size(11, 3, sw, pw, dw)
    offset = np.zeros((2, ho, wo, 18), np.float32)
    got = ops.deform_conv2d(x, offset, kernel, mask=np.ones((2, ho, wo, 9), np.float32),
                            strides=stride, padding=padding, dilation=dilation)
    # tf.nn.conv2d cannot combine strides and dilations: dilate, then subsample.
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    dense = tf.nn.conv2d(padded, kernel, 1, "VALID", dilations=[dh, dw]).numpy()
    np.testing.assert_allclose(got.numpy(), dense[:, ::sh, ::sw][:, :ho, :wo], atol=1e-4)


def test_compiles_under_xla_with_the_same_values():
    tensors, get = _case("offset_groups")
    args = [tf.constant(tensors[k].astype(np.float32)) for k in
            ("input", "offset", "kernel", "bias", "mask")]
    eager = ops.deform_conv2d(*args, padding=1)
    compiled = tf.function(lambda *a: ops.deform_conv2d(*a, padding=1), jit_compile=True)
    np.testing.assert_allclose(compiled(*args).numpy(), eager.numpy(), atol=1e-5)
    tensors, _ = _case("conv_groups")
    args = [tf.constant(tensors[k].astype(np.float32)) for k in
            ("input", "offset", "kernel", "bias", "mask")]
    eager = ops.deform_conv2d(*args, padding=1, groups=2)
    compiled = tf.function(lambda *a: ops.deform_conv2d(*a, padding=1, groups=2),
                           jit_compile=True)
    np.testing.assert_allclose(compiled(*args).numpy(), eager.numpy(), atol=1e-5)


@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 1), (2, 4)])
def test_new_dcn_v2_layer_is_half_the_plain_convolution_and_learns_offsets(stride, groups):
    """Zero offsets and masks sigmoid(0) = 0.5 at the start, Paddle's symmetric padding; the
    offset conv gets gradients; the layer survives a Keras config round trip."""
    import keras
    from tfdet.layers import DeformableConv2D
    layer = DeformableConv2D(8, 3, strides=stride, groups=groups, name="dcn")
    x = tf.random.stateless_normal([2, 9, 10, 8], [0, 1])
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(y * tf.random.stateless_normal(tf.shape(y), [2, 3]))
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    plain = tf.nn.convolution(padded, layer.kernel, stride, "VALID")
    assert y.shape == (2, -(-9 // stride), -(-10 // stride), 8) == plain.shape
    np.testing.assert_allclose(y.numpy(), 0.5 * plain.numpy(), atol=1e-4)
    grads = tape.gradient(loss, [layer.offset_kernel, layer.offset_bias])
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    clone = DeformableConv2D.from_config(layer.get_config())
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), y.numpy(), atol=1e-6)
    assert keras.saving.get_registered_name(DeformableConv2D) == "tfdet>DeformableConv2D"


def test_a_saved_model_with_deformable_convs_serves_without_tfdet(tmp_path):
    """Stock ops only: the SavedModel loads and runs in a process that never imports tfdet."""
    import subprocess
    import sys

    import keras
    from tfdet.layers import DeformableConv2D
    inputs = keras.Input([None, None, 4])
    x = DeformableConv2D(6, 3, strides=2, name="dcn1")(inputs)
    outputs = DeformableConv2D(5, 3, groups=1, name="dcn2")(x)
    model = keras.Model(inputs, outputs)
    for layer in model.layers[1:]:  # non-zero offsets and masks
        layer.offset_kernel.assign(tf.random.stateless_normal(layer.offset_kernel.shape,
                                                              [3, 4]) * 0.3)
    module = tf.Module()
    module.model = model  # tracks the variables
    module.f = tf.function(lambda x: model(x), input_signature=[
        tf.TensorSpec([None, None, None, 4], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "dcn"))
    x = np.random.default_rng(0).normal(size=(1, 11, 13, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    client = ("import sys, numpy as np, tensorflow as tf\n"
              "assert 'tfdet' not in sys.modules\n"
              "m = tf.saved_model.load(sys.argv[1])\n"
              "np.save(sys.argv[3], m.f(np.load(sys.argv[2])).numpy())\n"
              "assert not any(k.startswith('tfdet') for k in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", client, str(tmp_path / "dcn"),
                          str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                         capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                         env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x).numpy(), atol=1e-5)
