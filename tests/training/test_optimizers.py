"""tfdet's AdamW (a fused op per variable) against a numpy transcription of decoupled-decay Adam
and against keras.optimizers.AdamW, on one device and under a MirroredStrategy."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet.training.optimizers import AdamW, build_optimizer, set_lr_multipliers


def _numpy_adamw(weights, grads_per_step, lrs, decayed, wd, b1=0.9, b2=0.999, eps=1e-7):
    """Keras' AdamW: w -= w * wd * lr (decayed weights only), then Adam with bias correction."""
    weights = [w.astype(np.float64).copy() for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for i, g in enumerate(grads):
            if decayed[i]:
                weights[i] -= weights[i] * wd * lr
            m[i] += (g - m[i]) * (1 - b1)
            v[i] += (g * g - v[i]) * (1 - b2)
            weights[i] -= alpha * m[i] / (np.sqrt(v[i]) + eps)
    return weights, m, v


def _variables(strategy):
    with strategy.scope():
        kernel = keras.Variable(np.linspace(-1, 1, 12).reshape(3, 4).astype("float32"),
                                name="kernel")
        gamma = keras.Variable(np.full([4], 1.5, "float32"), name="gamma")
    return [kernel, gamma]


def _train(optimizer_cls, strategy, grads_per_step):
    variables = _variables(strategy)
    with strategy.scope():
        optimizer = optimizer_cls(
            keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01]),
            weight_decay=0.5)
        optimizer.exclude_from_weight_decay(var_names=["gamma"])
        optimizer.build(variables)

    @tf.function(autograph=False)
    def step(kernel_grad, gamma_grad):
        def replica():  # the gradients as a replica computes them (a loss's gradient)
            with tf.GradientTape() as tape:
                loss = (tf.reduce_sum(variables[0] * kernel_grad)
                        + tf.reduce_sum(variables[1] * gamma_grad))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        strategy.run(replica)

    for kernel_grad, gamma_grad in grads_per_step:
        step(tf.constant(kernel_grad), tf.constant(gamma_grad))
    return ([v.numpy() for v in variables], [m.numpy() for m in optimizer._momentums],
            [v.numpy() for v in optimizer._velocities], int(optimizer.iterations.numpy()))


@pytest.mark.parametrize("mirrored", [False, True])
def test_adamw_is_keras_adamw_with_decoupled_decay(mirrored):
    strategy = (tf.distribute.MirroredStrategy(["/cpu:0"]) if mirrored
                else tf.distribute.get_strategy())
    rng = np.random.default_rng(0)
    grads_per_step = [[rng.normal(size=(3, 4)).astype("float32"),
                       rng.normal(size=4).astype("float32")] for _ in range(4)]
    weights, m, v, steps = _train(AdamW, strategy, grads_per_step)
    start = [v.numpy() for v in _variables(tf.distribute.get_strategy())]
    want_w, want_m, want_v = _numpy_adamw(start, grads_per_step, [0.1, 0.1, 0.1, 0.01],
                                          decayed=[True, False], wd=0.5)
    assert steps == 4
    for got, want in zip(weights + m + v, want_w + want_m + want_v):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    # Keras' own op-by-op float32 step lands about 2e-6 from the float64 transcription (the
    # fused op 3e-7): the same update, rounded differently.
    keras_weights, keras_m, keras_v, _ = _train(keras.optimizers.AdamW, strategy,
                                                grads_per_step)
    for got, want in zip(weights + m + v, keras_weights + keras_m + keras_v):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=5e-6)


def test_build_optimizer_gives_the_fused_adamw_without_decay_on_norm_parameters():
    optimizer = build_optimizer("adamw", 1e-3, weight_decay=1e-4)
    assert isinstance(optimizer, AdamW)
    kernel, gamma = _variables(tf.distribute.get_strategy())
    assert optimizer._use_weight_decay(kernel) and not optimizer._use_weight_decay(gamma)
    # Saved and rebuilt from its config, as Keras does for a compiled model.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert isinstance(again, AdamW) and again.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize("kind", ["sgd", "rmsprop", "adamw"])
def test_lr_multipliers_scale_each_variables_rate_as_paddle(kind):
    """Two equal variables with equal gradients: the one with factor 0.1 moves by exactly
    0.1 x the other's step, for every optimizer kind (SGD with momentum, RMSProp and Adam
    steps are proportional to the rate for equal gradient histories; a gradient factor would
    not scale the last two). Decay is off so that only the rate differs."""
    start = np.linspace(-1, 1, 6).astype("float32")
    slow, fast = keras.Variable(start, name="slow"), keras.Variable(start, name="fast")
    optimizer = build_optimizer(kind, 0.05, momentum=0.9, weight_decay=0.0)
    optimizer.build([slow, fast])
    set_lr_multipliers(optimizer, [(slow, 0.1)])
    rng = np.random.default_rng(0)
    for _ in range(3):
        g = tf.constant(rng.normal(size=6).astype("float32"))
        optimizer.apply_gradients([(g, slow), (g, fast)])
    np.testing.assert_allclose(slow.numpy() - start, 0.1 * (fast.numpy() - start), rtol=1e-4,
                               atol=1e-7)
    assert np.abs(fast.numpy() - start).max() > 1e-3
    other = keras.Variable(start, name="other")
    with pytest.raises(ValueError, match="does not update"):
        set_lr_multipliers(optimizer, [(other, 0.5)])
    with pytest.raises(ValueError, match="takes no learning-rate multipliers"):
        set_lr_multipliers(keras.optimizers.SGD(0.1), [(slow, 0.1)])


def test_the_face_rows_backbone_convs_learn_at_a_tenth_in_the_trainer():
    """blazeface (Paddle's conv_lr 0.1): the factor is on the kernel of every conv feeding
    the heads and of none of the heads' convs, and the Trainer hands it to its optimizer."""
    from tfdet import models
    from tfdet.training import Trainer
    model = models.get("blazeface", image_size=64)
    multipliers = model.lr_multipliers()
    convs = [layer for layer in model.network.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    head = {v.path for conv in model.head.class_convs + model.head.box_convs
            for v in conv.weights}
    body = [layer for layer in convs if layer is not model.head]
    assert len(multipliers) == len(body) > 20 and {f for _, f in multipliers} == {0.1}
    assert {v.path for v, _ in multipliers} == {layer.kernel.path for layer in body}
    assert not head & {v.path for v, _ in multipliers}
    assert models.get("blazeface", image_size=64, backbone_lr_mult=1.0).lr_multipliers() == []
    trainer = Trainer(lambda: model, lambda: build_optimizer("rmsprop", 1e-3))
    assert sorted(trainer.optimizer.lr_multipliers.values()) == [0.1] * len(body)
