"""tfdet's BatchNorm (one fused op) and GroupNorm (a written-out gradient) against a numpy
transcription of the normalisations and against Keras' own layers' values and autodiff."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet.layers.norm import BatchNorm, GroupNorm, make_norm


def _numpy_norm(x, axes, gamma, beta, eps, mean=None, var=None):
    """(x - mean) / sqrt(var + eps) * gamma + beta with statistics over `axes` (biased)."""
    if mean is None:
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _pair(ours, keras_layer, shape, seed):
    """Builds both layers with the same random weights."""
    for layer in (ours, keras_layer):
        layer.build(shape)
    rng = np.random.default_rng(seed)
    for a, b in zip(ours.weights, keras_layer.weights):
        assert a.path.split("/")[-1] == b.path.split("/")[-1]
        value = rng.uniform(0.5, 1.5, a.shape) if "variance" in a.path else rng.normal(
            size=a.shape)
        a.assign(value.astype("float32"))
        b.assign(value.astype("float32"))


def _values_and_gradients(layer, x, upstream, training):
    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * upstream)
        return [y] + tape.gradient(loss, [x] + layer.trainable_weights)
    return [v.numpy() for v in run(tf.constant(x))]


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_is_keras_batch_norm_as_one_op(training):
    shape = (3, 5, 7, 6)
    ours = BatchNorm(momentum=0.9, epsilon=1e-5)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    _pair(ours, theirs, shape, 0)
    rng = np.random.default_rng(1)
    x = (rng.normal(size=shape) * 3 + 2).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    gamma, beta = ours.gamma.numpy(), ours.beta.numpy()
    moving_mean, moving_var = ours.moving_mean.numpy(), ours.moving_variance.numpy()

    got = _values_and_gradients(ours, x, upstream, training)
    want = _values_and_gradients(theirs, x, upstream, training)
    if training:
        expected = _numpy_norm(x, (0, 1, 2), gamma, beta, 1e-5)
        # moving statistics: momentum 0.9 towards the biased batch variance
        np.testing.assert_allclose(ours.moving_mean.numpy(),
                                   0.9 * moving_mean + 0.1 * x.mean((0, 1, 2)), rtol=1e-5)
        np.testing.assert_allclose(ours.moving_variance.numpy(),
                                   0.9 * moving_var + 0.1 * x.var((0, 1, 2)), rtol=1e-5)
        np.testing.assert_allclose(ours.moving_variance.numpy(),
                                   theirs.moving_variance.numpy(), rtol=1e-5)
    else:
        expected = _numpy_norm(x, None, gamma, beta, 1e-5, moving_mean, moving_var)
        np.testing.assert_array_equal(ours.moving_mean.numpy(), moving_mean)
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-4)
    assert len(got) == len(want) == 4  # y, dx, dgamma, dbeta
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_frozen_batch_norm_uses_its_moving_statistics_when_training():
    layer = make_norm("frozen_bn", "bn")
    layer.build((2, 4, 4, 3))
    layer.moving_mean.assign([1.0, 2.0, 3.0])
    layer.moving_variance.assign([4.0, 1.0, 0.25])
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    y = layer(x, training=True).numpy()
    np.testing.assert_allclose(
        y, _numpy_norm(x, None, 1.0, 0.0, 1e-5, np.array([1.0, 2, 3]), np.array([4, 1, 0.25])),
        rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, 2.0, 3.0])


def test_batch_norm_keeps_keras_path_for_other_inputs():
    ours, theirs = BatchNorm(), keras.layers.BatchNormalization()
    _pair(ours, theirs, (6, 4), 2)
    x = np.random.default_rng(3).normal(size=(6, 4)).astype("float32")
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), rtol=1e-6)


@pytest.mark.parametrize("shape,groups", [((2, 9, 11, 64), 32), ((3, 6, 5, 12), 4),
                                          ((2, 10, 8), 2), ((1, 3, 3, 8), 8)])
@pytest.mark.parametrize("training", [True, False])
def test_group_norm_values_and_gradients_are_keras_group_norm(shape, groups, training):
    ours = GroupNorm(groups=groups, epsilon=1e-5)
    theirs = keras.layers.GroupNormalization(groups=groups, epsilon=1e-5)
    _pair(ours, theirs, shape, 4)
    rng = np.random.default_rng(5)
    x = (rng.normal(size=shape) * 4 - 1).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    got = _values_and_gradients(ours, x, upstream, training)
    want = _values_and_gradients(theirs, x, upstream, training)
    # numpy: statistics per image and group of channels over every other axis
    c = shape[-1]
    grouped = x.reshape(shape[0], -1, groups, c // groups)
    expected = _numpy_norm(grouped, (1, 3), 1.0, 0.0, 1e-5).reshape(shape)
    expected = expected * ours.gamma.numpy() + ours.beta.numpy()
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-4)
    for name, a, b in zip(["y", "dx", "dgamma", "dbeta"], got, want):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4, err_msg=name)


def test_group_norm_traces_for_unknown_batch_and_size():
    layer = GroupNorm(groups=4)
    layer.build((None, None, None, 8))
    run = tf.function(lambda x: tf.gradients(tf.reduce_sum(layer(x, training=True) ** 2), x),
                      input_signature=[tf.TensorSpec([None, None, None, 8])])
    for shape in [(1, 3, 5, 8), (2, 4, 4, 8)]:
        (dx,) = run(tf.random.normal(shape))
        assert dx.shape == shape and np.isfinite(dx.numpy()).all()
