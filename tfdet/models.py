"""The zoo registry: every zoo row by name, built as a Keras model.

    tfdet.models.list_models() -> ["retinanet_r101_fpn_1x", ...]
    tfdet.models.get("retinanet_r50_fpn", num_classes=None, weights=None, **overrides)
    tfdet.models.architecture("faster_rcnn_dcn_r50_fpn_1x") -> ('faster_rcnn', {...})
    tfdet.models.load("runs/X")    # a run folder (train.py, convert_weights.py) -> its model

A row is a config file in tfdet/configs (configs/ in the repository) that sets ModelConfig.name
to its own file name; its architecture is the file's `architecture.*` bindings plus those of
the family base it includes (configs/base/faster_rcnn_fpn.gin: `architecture.detector =
'faster_rcnn'`, ...), read without running gin. Adding a row is adding such a file:

    include 'faster_rcnn_r101_vd_fpn_2x.gin'
    ModelConfig.name = 'faster_rcnn_dcn_r101_vd_fpn_2x'
    architecture.dcn_stages = (3, 4, 5)

A name without its schedule suffix (retinanet_r50_fpn) is the same architecture as its 1x row.
`overrides` replace architecture settings (e.g. depth=18, norm="bn" for training from scratch).
`weights` is a local Keras weights file; nothing downloads.
"""
import functools
import glob
import os

import numpy as np

from tfdet import config_files
from tfdet import detectors  # noqa: F401  (importing it registers every detector)
from tfdet.registry import DETECTORS

# A name without one of these suffixes is the same architecture as its row with the suffix.
_SCHEDULES = ("_1x", "_2x")


@functools.lru_cache(maxsize=None)
def _rows():
    """{row: (detector, settings)}: every top-level config file in tfdet's configs that names
    itself (ModelConfig.name == its file name), with the `architecture.*` bindings of the file
    and its includes (tfdet.config.architecture)."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(config_files.CONFIGS, "*.gin"))):
        bindings = config_files.read_bindings(path)
        name = bindings.get("ModelConfig.name")
        if name != os.path.basename(path)[:-len(".gin")]:
            continue
        settings = {key.split(".", 1)[1]: value for key, value in bindings.items()
                    if key.startswith("architecture.")}
        detector = settings.pop("detector", None)
        if detector not in DETECTORS:
            raise ValueError(f"{path}: architecture.detector must be one of "
                             f"{DETECTORS.names()}, got {detector!r}")
        bad = [k for k, v in settings.items() if isinstance(v, config_files.Reference)]
        if bad:
            raise ValueError(f"{path}: architecture.{bad[0]} must be a literal (the registry "
                             f"reads configs without running gin)")
        rows[name] = (detector, settings)
    return rows


def list_models():
    """Every registered zoo row, sorted: the config files in tfdet/configs (configs/ in the
    repository) that set ModelConfig.name to their own name."""
    return sorted(_rows())


def registered_row(name):
    """The registered row a name refers to (a short alias gets the 1x row), or None."""
    rows = _rows()
    for row in (name,) + tuple(name + suffix for suffix in _SCHEDULES):
        if row in rows:
            return row
    return None


def resolve(name):
    """registered_row(name), or KeyError listing the registered rows."""
    row = registered_row(name)
    if row is None:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return row


def architecture(name):
    """(detector, settings) of a registered row: its config's `architecture.*` bindings
    (family base plus row file), e.g. ('faster_rcnn', {'depth': 101, 'variant': 'd', ...});
    settings a row leaves unbound take the detector class's defaults."""
    detector, settings = _rows()[resolve(name)]
    return detector, dict(settings)


def predicts_masks(name, architecture=None):
    """Whether the model predicts instance masks (its training data needs them): a
    registered row's detector, else the detector of `architecture` (detector, settings)."""
    row = registered_row(name)
    detector = _rows()[row][0] if row else _unregistered_detector(name, architecture)
    return getattr(DETECTORS.get(detector), "predicts_masks", False)


def _unregistered_detector(name, architecture):
    """The detector of an unregistered name's architecture; KeyError (resolve's) without one."""
    if not architecture or architecture[0] is None:
        resolve(name)
    return architecture[0]


def get(name, *, num_classes=None, weights=None, build_size=128, restoring=False,
        architecture=None, **overrides):
    """Builds a zoo model (weights created by one forward pass at build_size x build_size,
    or at the model's fixed input size).

    name: a row of list_models() (a 1x / 2x suffix may be left out); num_classes: foreground
    classes (the R-CNN heads add the background); overrides: architecture settings of the
    detector class (e.g. depth=18, norm='bn', score_threshold=0.3). architecture: (detector,
    settings) of a name that is no registered row (tfdet.config.architecture of a new row's
    config file; Experiment.build_model passes it); a registered row's architecture is its
    own, changed by overrides.
    weights: a Keras weights file, a tfdet checkpoint / run folder, or a PaddleDetection
    ImageNet backbone `.pdparams` (tfdet.convert.load_paddle_backbone); without it the model
    has random weights, and a warning says so unless restoring=True (the caller restores a
    checkpoint next). Whole PaddleDetection detectors convert with scripts/convert_weights.py,
    then load with tfdet.models.load(folder).

    Inputs: `model(images)` takes float32 RGB [B, H, W, 3] already resized, normalised and
    zero-padded, as the row's config's evaluation transform makes them (`tfdet.detect(model,
    image)` does all of it from a uint8 image or a file). "Normalised" is (pixel - mean) / std
    per RGB channel in 0..255 units:
      RetinaNet, Faster / Mask R-CNN: ImageNet mean (123.675, 116.28, 103.53), std (58.395,
        57.12, 57.375); short side 800, long side <= 1333; padded to a multiple of 128
        (RetinaNet) or 32 (R-CNN). Faster / Mask R-CNN and YOLOv3 also take
        `image_sizes` [B, 2] (h, w before padding) to clip to.
      SSD VGG16: mean (104, 117, 123), std 1; SSD MobileNetV1: mean and std 127.5; a square
        300 (512) input.
      YOLOv3: ImageNet mean / std; a square side that is a multiple of 32 (608, 416, 320).
    Outputs: {boxes [B, N, 4] xyxy in input pixels, scores [B, N], classes [B, N] int32
    (contiguous 0..K-1), num_detections [B] int32} (Mask R-CNN adds masks [B, N, m, m]: each
    box's mask probabilities). The SavedModel's signatures (tfdet.export) take uint8 images or
    encoded bytes and return the same detections as TF OD API outputs: detection_boxes
    normalised [y1, x1, y2, x2] of the original image, detection_scores, detection_classes
    (the data set's category ids, float32), num_detections (float32), detection_masks.
    """
    row = registered_row(name)
    if row is None:
        _unregistered_detector(name, architecture)
    elif architecture is not None:
        raise ValueError(f"{name!r} is a registered row: change its architecture with "
                         f"overrides, not architecture=")
    detector, settings = _rows()[row] if row else architecture
    kwargs = {**settings, **overrides}
    if num_classes:
        kwargs["num_classes"] = num_classes
    model_name = _describe(row, settings, overrides) if row else name
    model = DETECTORS.get(detector)(name=model_name, **kwargs)
    model.tfdet_row = row or name  # the zoo row (and config) it was built from
    # Models with one fixed input size (SSD) are built at that size.
    size = getattr(model, "fixed_input_size", None) or build_size
    _build(model, size)
    if weights:
        _load_weights(model, weights)
    elif not restoring and name not in _WARNED_UNTRAINED:
        _WARNED_UNTRAINED.add(name)
        from absl import logging
        logging.warning(
            "%s has random weights (no weights=): it detects nothing useful until trained or "
            "restored. The zoo's recipes start from an ImageNet backbone: "
            "weights='ResNet50_cos_pretrained.pdparams' (PaddleDetection's pretrain_weights, "
            "ModelConfig.weights in configs); trained PaddleDetection detectors convert with "
            "scripts/convert_weights.py.", model.name)
    return model


_WARNED_UNTRAINED = set()


def _build(model, size):
    """Creates the model's weights with one forward pass on zeros [1, size, size, 3], under
    the detector's `build_settings` (config values for that pass only, e.g. FasterRCNN's
    proposal counts)."""
    changes = getattr(model, "build_settings", {})
    config = model.config if changes else {}
    saved = {k: config[k] for k in changes}
    config.update(changes)
    try:
        model(np.zeros((1, size, size, 3), np.float32))
    finally:
        config.update(saved)


def _describe(row, settings, overrides):
    """The model's name: the row's, with its backbone token changed when overrides change the
    ResNet depth / variant (retinanet_r50_fpn_1x with depth 18 -> retinanet_r18_fpn_1x)."""
    import re
    depth = overrides.get("depth", settings.get("depth"))
    variant = overrides.get("variant", settings.get("variant", "b"))
    if ("depth" not in overrides and "variant" not in overrides) or depth is None:
        return row
    if (depth, variant) == (settings.get("depth"), settings.get("variant", "b")):
        return row
    token = f"r{depth}{'_vd' if variant == 'd' else ''}"
    return re.sub(r"(?<=_)(r|x)\d+(_vd)?(_\d+x\d+d)?(?=_|$)", token, row, count=1)


def _load_weights(model, weights):
    """A Keras weights file (.weights.h5 / .keras), a tfdet checkpoint (prefix or folder) or a
    PaddleDetection / PaddleClas ImageNet backbone (.pdparams: the backbone only, as the
    zoo's `pretrain_weights`; tfdet.convert.load_paddle_backbone; the static zoo's `.tar`:
    tfdet.convert.load_static_backbone)."""
    import os

    import tensorflow as tf
    if weights.endswith((".weights.h5", ".keras", ".h5")):
        model.load_weights(weights)
        return
    if weights.endswith(".pdparams"):
        from tfdet.convert import load_paddle_backbone
        load_paddle_backbone(model, weights)
        return
    if weights.endswith(".tar"):  # the static zoo's ImageNet weights (one file per variable)
        from tfdet.convert import load_static_backbone
        load_static_backbone(model, weights)
        return
    from tfdet.training.checkpoints import resolve_checkpoint, restore_model
    if not (os.path.isdir(weights) or tf.io.gfile.exists(weights + ".index")):
        raise FileNotFoundError(f"weights {weights!r}: not a Keras weights file, a checkpoint "
                                "prefix or a run folder")
    restore_model(model, resolve_checkpoint(weights))


def load(run_dir, allow_config_imports=False):
    """The Keras model of a run folder (scripts/train.py or scripts/convert_weights.py) with
    its latest checkpoint's weights: config from run_dir/config.gin (else the config text in
    run.json), class count from run.json."""
    import os
    import tempfile

    from tfdet.config import load_experiment
    from tfdet.training.checkpoints import read_run_info, resolve_checkpoint, restore_run
    checkpoint = resolve_checkpoint(os.fspath(run_dir))
    info = read_run_info(checkpoint)
    config = os.path.join(os.path.dirname(checkpoint), "config.gin")
    if os.path.exists(config):
        exp = load_experiment(config, allow_imports=allow_config_imports)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".gin", delete=False) as f:
            f.write(info.get("config", ""))
        try:
            exp = load_experiment(f.name, allow_imports=allow_config_imports)
        finally:
            os.unlink(f.name)
    model, _, _ = restore_run(exp, checkpoint, info)
    # For tfdet.detect: the run's preprocessing and class names.
    model.tfdet_experiment = exp
    model.tfdet_class_names = info.get("class_names")
    return model
