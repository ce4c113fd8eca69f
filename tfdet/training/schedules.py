"""Learning-rate schedules in iterations, as the zoo writes them.

    WarmupPiecewise(base_lr=0.02, milestones=(60000, 80000), gamma=0.1,
                    warmup_steps=1000, warmup_factor=1/3)

is Detectron's 1x: linear warmup from base_lr * warmup_factor to base_lr over warmup_steps,
then x gamma at each milestone. `scaled_lr` applies the linear scaling rule.
"""
import keras
import tensorflow as tf


def scaled_lr(base_lr, base_batch_size, global_batch_size):
    """The linear scaling rule (Goyal et al.): LR proportional to the global batch."""
    return base_lr * global_batch_size / base_batch_size


@keras.saving.register_keras_serializable("tfdet")
class WarmupPiecewise(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then piecewise-constant decay by `gamma` at each milestone, or by
    explicit `factors` (base_lr x factors[i] after i milestones; len(milestones) + 1 of them,
    e.g. Paddle's `values` 0.001, 0.0005, ... divided by the base LR)."""

    def __init__(self, base_lr, milestones=(), gamma=0.1, warmup_steps=0, warmup_factor=1 / 3,
                 factors=None):
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {milestones}")
        if factors is not None and len(factors) != len(milestones) + 1:
            raise ValueError(f"factors needs {len(milestones) + 1} values (one per interval), "
                             f"got {list(factors)}")
        self.base_lr = float(base_lr)
        self.milestones = tuple(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)
        self.factors = None if factors is None else tuple(float(f) for f in factors)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        passed = tf.zeros([], tf.float32)
        for milestone in self.milestones:
            passed += tf.cast(step >= milestone, tf.float32)
        if self.factors is None:
            lr = self.base_lr * tf.pow(self.gamma, passed)
        else:
            lr = self.base_lr * tf.gather(tf.constant(self.factors), tf.cast(passed, tf.int32))
        if self.warmup_steps > 0:
            alpha = tf.minimum(step / self.warmup_steps, 1.0)
            lr *= self.warmup_factor + (1.0 - self.warmup_factor) * alpha
        return lr

    def get_config(self):
        return dict(base_lr=self.base_lr, milestones=self.milestones, gamma=self.gamma,
                    warmup_steps=self.warmup_steps, warmup_factor=self.warmup_factor,
                    factors=self.factors)
