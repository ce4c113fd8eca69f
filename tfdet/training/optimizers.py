"""Optimizer setup: SGD with momentum (the zoo) or AdamW (training from scratch), L2 decay.

The zoo's L2 decay (Paddle `L2Decay`, Detectron WEIGHT_DECAY) adds `decay * w` to the gradient
of each kernel and bias before momentum; norm scales and offsets are not decayed (detectron2's
WEIGHT_DECAY_NORM = 0). AdamW uses its own decoupled decay instead.

Per-variable learning-rate multipliers (Paddle's `ParamAttr(learning_rate=m)`, e.g. the face
backbones' 0.1): every optimizer built here scales the learning rate of a variable's update
by its multiplier (`set_lr_multipliers`; the Trainer takes them from the model's
`lr_multipliers()`, a list of (variable, factor)). Scaling the rate, not the gradient, is what Paddle does, and the two
differ for RMSProp and Adam, whose steps do not scale with the gradient.
"""
import keras
import tensorflow as tf

_NORM_PARAMS = ("gamma", "beta", "scale", "offset")


def build_optimizer(kind, learning_rate, momentum=0.9, weight_decay=1e-4):
    """kind 'sgd' (momentum), 'rmsprop' (Paddle's RMSProp: rho 0.95, epsilon 1e-6; the
    MobileNet-SSD recipe) -- both with L2 through `l2_gradients` -- or 'adamw' (decoupled
    decay)."""
    if kind == "sgd":
        return SGD(learning_rate, momentum=momentum)
    if kind == "rmsprop":
        return RMSprop(learning_rate, rho=0.95, momentum=momentum, epsilon=1e-6)
    if kind == "adamw":
        optimizer = AdamW(learning_rate, weight_decay=weight_decay)
        optimizer.exclude_from_weight_decay(var_names=list(_NORM_PARAMS))
        return optimizer
    raise ValueError(f"optimizer must be 'sgd', 'rmsprop' or 'adamw', got {kind!r}")


class LRMultipliers:
    """Optimizer mixin: `lr_multipliers` maps a variable's index in the optimizer to the
    factor on its learning rate (set_lr_multipliers); others keep the rate."""

    lr_multipliers = {}

    def variable_learning_rate(self, variable, learning_rate):
        factor = self.lr_multipliers.get(self._get_variable_index(variable), 1.0)
        return learning_rate if factor == 1.0 else learning_rate * factor

    def update_step(self, gradient, variable, learning_rate):
        return super().update_step(gradient, variable,
                                   self.variable_learning_rate(variable, learning_rate))


@keras.saving.register_keras_serializable("tfdet")
class SGD(LRMultipliers, keras.optimizers.SGD):
    """keras.optimizers.SGD with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable("tfdet")
class RMSprop(LRMultipliers, keras.optimizers.RMSprop):
    """keras.optimizers.RMSprop with per-variable learning-rate multipliers."""


def set_lr_multipliers(optimizer, multipliers):
    """Gives a built optimizer of this module [(variable, factor)] (its learning rate times
    factor for that variable's updates). A variable the optimizer does not update, or an
    optimizer without multipliers (a stock Keras one), is a ValueError."""
    if not isinstance(optimizer, LRMultipliers):
        raise ValueError(f"{type(optimizer).__name__} takes no learning-rate multipliers; "
                         "build it with tfdet.training.build_optimizer")
    table = {}
    for variable, factor in multipliers:
        try:
            table[optimizer._get_variable_index(variable)] = float(factor)
        except KeyError:
            raise ValueError(f"learning-rate multiplier for {variable.path}, which the "
                             "optimizer does not update") from None
    optimizer.lr_multipliers = table


@keras.saving.register_keras_serializable("tfdet")
class AdamW(LRMultipliers, keras.optimizers.AdamW):
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
        learning_rate = self.variable_learning_rate(variable, learning_rate)
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        if self.weight_decay is not None and self._use_weight_decay(variable):
            variable.assign_sub(variable * tf.cast(self.weight_decay, dtype) * lr)
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return keras.optimizers.AdamW.update_step(self, gradient, variable, learning_rate)
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
