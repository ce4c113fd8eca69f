"""A run folder: checkpoints plus `run.json` (class map, config) for eval and export.

    model_dir/
      checkpoint, ckpt-<step>.index, ckpt-<step>.data-*   tf.train.CheckpointManager files
      run.json        {"num_classes", "class_names", "category_ids", "config"}
      config.gin      (converted weights) the config that builds the checkpoint's model
      train/          TensorBoard events
"""
import json
import os

import tensorflow as tf

RUN_FILE = "run.json"


def write_run_info(model_dir, dataset, config_text=""):
    """Records the class map of the training data (and the operative config) once."""
    write_run_info_dict(model_dir, {
        "num_classes": dataset.num_classes, "class_names": list(dataset.class_names),
        "category_ids": [int(c) for c in dataset.category_ids], "config": config_text})


def write_run_info_dict(model_dir, info):
    """Writes run.json atomically (num_classes, class_names, category_ids, config, ...)."""
    os.makedirs(model_dir, exist_ok=True)
    tmp = os.path.join(model_dir, RUN_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    os.replace(tmp, os.path.join(model_dir, RUN_FILE))


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix or a model_dir (its latest); clear error otherwise."""
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in {path} (no 'checkpoint' index file)")
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"checkpoint {path!r} not found ({path}.index is missing)")
    return path


def run_config(path):
    """The config.gin stored with a checkpoint (converted weights), or None."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    config = os.path.join(folder, "config.gin")
    return config if os.path.exists(config) else None


def config_for(config, checkpoint):
    """The config a script should load: `config` if given, else the config.gin stored with
    `checkpoint` (converted weights); SystemExit naming the flag when there is neither."""
    found = config or (checkpoint and run_config(checkpoint))
    if not found:
        raise SystemExit("give --config (or a --checkpoint folder holding config.gin)")
    return found


def read_run_info(checkpoint):
    """run.json of the folder holding a checkpoint prefix."""
    path = os.path.join(os.path.dirname(checkpoint), RUN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: it is written by scripts/train.py and holds "
                                f"the class map of the checkpoint")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def restore_run(exp, checkpoint, info=None):
    """A trained model back from a checkpoint prefix or run folder (its latest): (the model
    built by exp for the run's classes with the checkpoint's weights, the checkpoint prefix,
    the run info: num_classes, category_ids, class_names). info: the run info when the
    caller has read it already (read_run_info of the resolved prefix)."""
    checkpoint = resolve_checkpoint(checkpoint)
    info = info or read_run_info(checkpoint)
    model = restore_model(exp.build_model(info["num_classes"], restoring=True), checkpoint)
    return model, checkpoint, info


def restore_model(model, checkpoint):
    """Loads a trainer checkpoint's model weights into `model` (optimizer state ignored)."""
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial().assert_existing_objects_matched()
    return model
