"""The flags that scripts/train.py, eval.py and export.py share, and the experiment they name.

    from tfdet import cli
    cli.define_config_flags(checkpoint_help="...")
    ...
    config, exp = cli.experiment_from_flags(flags.FLAGS)
"""
from absl import flags


def define_config_flags(config_help="gin config file (configs/<zoo row>.gin; default: the "
                        "--checkpoint folder's config.gin)",
                        checkpoint_help="checkpoint prefix or run folder (its latest)"):
    """--config, --gin_bindings, --allow_config_imports and --checkpoint."""
    flags.DEFINE_string("config", None, config_help)
    flags.DEFINE_multi_string("gin_bindings", [], "extra gin bindings, applied after the file")
    flags.DEFINE_bool("allow_config_imports", False,
                      "let the config and bindings import modules (gin runs their code)")
    flags.DEFINE_string("checkpoint", None, checkpoint_help)


def experiment_from_flags(f):
    """(the config file used, its Experiment) from the flags above: --config, else the
    --checkpoint run folder's config.gin; --gin_bindings on top."""
    from tfdet.config import load_experiment
    from tfdet.training import config_for

    config = config_for(f.config, f.checkpoint)
    return config, load_experiment(config, f.gin_bindings, allow_imports=f.allow_config_imports)
