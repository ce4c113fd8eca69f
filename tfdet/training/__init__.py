"""Training: LR schedules, optimizer setup, the tf.distribute strategy and the trainer."""
from tfdet.training.optimizers import (build_optimizer, l2_gradients, set_lr_multipliers,
                                       uses_l2_gradients)
from tfdet.training.schedules import WarmupPiecewise, scaled_lr
from tfdet.training.strategy import describe, get_strategy
from tfdet.training.trainer import NonFiniteLossError, Trainer, TrainResult
from tfdet.training.checkpoints import (
    read_run_info,
    resolve_checkpoint,
    restore_model,
    restore_run,
    config_for,
    run_config,
    write_run_info,
)
