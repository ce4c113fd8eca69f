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
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        optimizer.exclude_from_weight_decay(var_names=list(_NORM_PARAMS))
        return optimizer
    raise ValueError(f"optimizer must be 'sgd', 'rmsprop' or 'adamw', got {kind!r}")


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
