"""Optimizer setup: SGD with momentum (the zoo) or AdamW (training from scratch), L2 decay.

The zoo's L2 decay (Paddle `L2Decay`, Detectron WEIGHT_DECAY) adds `decay * w` to the gradient
of each kernel and bias before momentum; norm scales and offsets are not decayed (detectron2's
WEIGHT_DECAY_NORM = 0). AdamW uses its own decoupled decay instead.
"""
import keras
import tensorflow as tf

_NORM_PARAMS = ("gamma", "beta", "scale", "offset")


def build_optimizer(kind, learning_rate, momentum=0.9, weight_decay=1e-4):
    """kind 'sgd' (momentum), 'rmsprop' (Paddle's RMSProp: rho 0.95, epsilon 1e-6; the
    MobileNet-SSD recipe) -- both with L2 through `l2_gradients` -- or 'adamw' (decoupled
    decay)."""
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum)
    if kind == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, rho=0.95, momentum=momentum,
                                        epsilon=1e-6)
    if kind == "adamw":
        optimizer = AdamW(learning_rate, weight_decay=weight_decay)
        optimizer.exclude_from_weight_decay(var_names=list(_NORM_PARAMS))
        return optimizer
    raise ValueError(f"optimizer must be 'sgd', 'rmsprop' or 'adamw', got {kind!r}")


@keras.saving.register_keras_serializable("tfdet")
class AdamW(keras.optimizers.AdamW):
    """keras.optimizers.AdamW (same variables, same update) with each variable's step as
    TensorFlow's fused ResourceApplyAdam op, its decoupled decay in the same per-variable
    update. Keras' step is about 20 traced ops and two distribution updates per variable: for
    an R18 RetinaNet (99 variables) that made the first training step 7.0 s instead of 3.6 s
    with SGD, and every step 20 ms longer (BENCHMARKS.md, "A fused AdamW step")."""

    def _apply_weight_decay(self, variables):
        """Keras decays every variable in a distribution update of its own, then updates them
        all; here update_step decays each variable just before its Adam step, in the same
        update (the result is the same: each variable's decay and step touch only it)."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        if self.weight_decay is not None and self._use_weight_decay(variable):
            variable.assign_sub(variable * tf.cast(self.weight_decay, dtype) * lr)
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        # m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
        # w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps): Keras' Adam, in one op.
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=lr, beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def _handle(variable):
    """The resource handle of a Keras or TF variable (a mirrored one's for the replica being
    updated)."""
    if isinstance(variable, keras.Variable):  # wraps a tf.Variable (its .value)
        variable = variable.value
    return variable.handle


def uses_l2_gradients(kind):
    """Whether weight decay is added to the gradients (L2), not decoupled in the optimizer."""
    return kind in ("sgd", "rmsprop")


def decayed(variable):
    """Whether L2 decay applies: kernels and biases, not norm parameters."""
    return variable.name not in _NORM_PARAMS


def l2_gradients(grads, variables, weight_decay):
    """grads + weight_decay * w for decayed variables (the L2 term's gradient)."""
    if not weight_decay:
        return list(grads)
    return [g if g is None or not decayed(v)
            else g + tf.cast(weight_decay, g.dtype) * tf.convert_to_tensor(v)
            for g, v in zip(grads, variables)]
