"""Weights from other frameworks: PaddleDetection 2.x `.pdparams` and the static-graph zoo's
`.tar` files (read without paddle)."""
from tfdet.convert.paddle import (  # noqa: F401
    PADDLE_CONFIGS, ConversionError, build_for_paddle, convert_paddle_checkpoint, convert_state,
    from_paddle, load_paddle_backbone, paddle_config)
from tfdet.convert.pdparams import (  # noqa: F401
    WeightFileError, parse_paddle_tensor, read_pdparams, read_static_params, write_pdparams)
from tfdet.convert.static import (  # noqa: F401
    convert_static_checkpoint, convert_static_state, from_static, is_static_state,
    load_static_backbone, read_static_weights)
