"""Experiment configuration: gin-configurable dataclasses, one per concern.

A config file binds their fields (`DataConfig.short_side = 800`); `load_experiment` parses the
file plus `--gin_bindings` and returns an `Experiment`, which builds the model, the data
sets, the input pipelines and the optimizer from them. Config files live in `configs/`
(tfdet/configs): a family base (`configs/base/retinanet.gin`), a schedule
(`configs/base/schedule_1x.gin`) and one short file per zoo row; a model's architecture is
its `architecture.*` bindings (see `architecture`), and those files are the zoo registry
(tfdet.models).
"""
import contextlib
import dataclasses
import logging
import os
from typing import Optional, Sequence

import gin
from gin import config_parser

from tfdet import config_files, data, models
from tfdet.training import optimizers, schedules


class _DropGinPathChecks(logging.Filter):
    """gin logs every include lookup ('system_path_file_exists:PATH') on the root logger."""

    def filter(self, record):
        return not str(record.msg).startswith("system_path_file_exists")


logging.getLogger().addFilter(_DropGinPathChecks())

COCO_TRAIN = "coco:data/coco/annotations/instances_train2017.json:data/coco/train2017"
COCO_VAL = "coco:data/coco/annotations/instances_val2017.json:data/coco/val2017"
_SQUARE = ("ssd", "face", "yolo", "square")  # recipes with square inputs of DataConfig.square_size


@gin.configurable
@dataclasses.dataclass
class ModelConfig:
    """name: a zoo row (tfdet.models); num_classes: None = the training data's count;
    overrides: architecture settings (e.g. {'depth': 18, 'norm': 'bn'}); weights: a local
    file to initialise from (a Keras weights file, a checkpoint prefix, or an ImageNet
    backbone `.pdparams` from PaddleDetection / PaddleClas or the static zoo's `.tar`: the
    zoo's pretrain_weights).
    tta: evaluate (eval.py) and export (serving_tta) with the multi-scale + flip test
    (tfdet.tta) at tta_scales (None: the zoo's 400..1200), as the zoo's ms_test rows."""

    name: str = "retinanet_r50_fpn_1x"
    num_classes: Optional[int] = None
    overrides: dict = dataclasses.field(default_factory=dict)
    weights: Optional[str] = None
    tta: bool = False
    tta_scales: Optional[Sequence[int]] = None


@gin.configurable
def architecture(detector=None, **settings):
    """A model's architecture, one binding per setting: `architecture.detector` (a name in
    tfdet.registry.DETECTORS: 'retinanet', 'faster_rcnn', 'mask_rcnn', 'cascade_rcnn',
    'cascade_mask_rcnn', 'ssd', 'yolov3'; set by the family base) and any keyword argument
    of that detector class (`architecture.depth = 101`, `architecture.dcn_stages = (3, 4, 5)`).
    A row's file adds its bindings to its family base's, as mmdetection's _base_ files.
    Returns (detector, settings)."""
    return detector, settings


@gin.configurable
@dataclasses.dataclass
class DataConfig:
    """Data-set specs (see tfdet.data.load_dataset) and the input recipe.

    short_side: one size or several (multi-scale training picks one per image);
    pad_size: (H, W) to pad every training batch to (one static shape), else padded to the
    batch's largest image rounded up to size_divisor. train_limit: use only the first N
    training images (quick runs and tests); eval_limit: score only the first N evaluation
    images (the results name the count; Model Garden's validation_steps in images).
    augment: 'standard' (resize keeping aspect + flip: R-CNN, RetinaNet), 'ssd'
    (photometric distortion, expand, min-IoU crop, flip, square resize to square_size), 'face'
    (the same with the face detectors' data-anchor-sampling crop instead) or
    'square' (square resize and flip only: SSD / YOLO models on small data) or 'yolo'
    (SSD's per-image steps at square_size, then per batch mixup while the step is below
    mixup_until_step and a random square size from yolo_sizes).
    mean / std: per RGB channel in 0..255 units. metric: 'coco' (box / mask AP), 'voc'
    (VOC2007 11-point mAP at IoU 0.5) or 'widerface[:GROUND_TRUTH_DIR]' (WIDER FACE AP; Easy /
    Medium / Hard with the official .mat files in that folder). face_test: how the face
    rows evaluate: '' or 'square' (the eval transform's square resize), 'original' (each image at its
    own size, ppdet's face protocol) or 'multi_scale' (ppdet's face_eval.py --multi_scale;
    tfdet.evaluation.face_test)."""

    train: str = COCO_TRAIN
    eval: str = COCO_VAL
    short_side: Sequence[int] = (800,)
    max_long_side: int = 1333
    eval_short_side: int = 800
    size_divisor: int = 128
    pad_size: Optional[Sequence[int]] = None
    flip_prob: float = 0.5
    max_boxes: Optional[int] = None  # box slots per image; None: the data's largest count
    shuffle_buffer: int = 1024
    train_limit: Optional[int] = None
    eval_limit: Optional[int] = None
    augment: str = "standard"
    square_size: int = 300
    ssd_allow_no_crop: bool = True
    yolo_sizes: Sequence[int] = tuple(range(320, 609, 32))
    mixup_until_step: Optional[int] = None
    mean: Sequence[float] = data.IMAGENET_MEAN
    std: Sequence[float] = data.IMAGENET_STD
    metric: str = "coco"
    face_test: str = ""


@gin.configurable
@dataclasses.dataclass
class ScheduleConfig:
    """The zoo's schedule in iterations: base_lr is for base_batch_size images per step."""

    base_lr: float = 0.01
    base_batch_size: int = 16
    total_steps: int = 90000
    milestones: Sequence[int] = (60000, 80000)
    gamma: float = 0.1
    warmup_steps: int = 500
    warmup_factor: float = 1 / 3
    factors: Optional[Sequence[float]] = None  # explicit LR multipliers per interval


@gin.configurable
@dataclasses.dataclass
class TrainConfig:
    """Optimiser, batch and bookkeeping. nonfinite: 'error' stops at a NaN / Inf loss,
    'skip' drops that step's update and counts it (stopping after more than
    max_consecutive_skips in a row)."""

    global_batch_size: int = 16
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scale_lr: bool = True
    checkpoint_every: int = 2500
    keep_checkpoints: int = 5
    log_every: int = 20
    image_summary_every: int = 1000
    seed: Optional[int] = 0
    nonfinite: str = "error"
    max_consecutive_skips: int = 10


@dataclasses.dataclass
class Experiment:
    """One run's settings; builds every piece the scripts need."""

    model: ModelConfig
    data: DataConfig
    schedule: ScheduleConfig
    train: TrainConfig
    config_text: str = ""
    # (detector, settings) the config binds (tfdet.config.architecture), and the model name
    # its file binds before --gin_bindings (see build_model).
    architecture: tuple = (None, {})
    file_row: Optional[str] = None

    # -- data --------------------------------------------------------------------------------
    def dataset(self, spec, limit=None, evaluation=False):
        """A DetectionDataset from a spec; a missing COCO default stops with the paths.
        evaluation=True keeps images without boxes (pycocotools scores their false
        positives too)."""
        _check_exists(spec)
        dataset = data.load_dataset(spec, keep_empty=evaluation)
        if limit:
            dataset = dataclasses.replace(dataset, examples=dataset.examples[:limit])
        return dataset

    def train_transform(self):
        d = self.data
        if d.augment in _SQUARE:
            return data.ssd_transforms(
                True, d.square_size, d.mean, d.std, d.flip_prob, d.ssd_allow_no_crop,
                distort=d.augment != "square",
                crop="data_anchor" if d.augment == "face" else "min_iou")
        if d.augment != "standard":
            raise ValueError(f"DataConfig.augment must be 'standard', 'ssd', 'face', 'yolo' or "
                             f"'square', got {d.augment!r}")
        return data.detection_transforms(True, tuple(d.short_side), d.max_long_side,
                                         d.flip_prob, d.mean, d.std)

    def eval_transform(self):
        """The evaluation (and serving) preprocessing: resize and normalise."""
        d = self.data
        if d.augment in _SQUARE:
            return data.ssd_transforms(False, d.square_size, d.mean, d.std)
        return data.detection_transforms(False, d.eval_short_side, d.max_long_side,
                                         mean=d.mean, std=d.std)

    def serving_canvas(self):
        """The largest padded input the eval transform makes (the export's canvas side)."""
        d = self.data
        if d.augment in _SQUARE:
            return d.square_size
        return -(-d.max_long_side // d.size_divisor) * d.size_divisor

    def train_pipeline(self, dataset, batch_size, skip=0, shard=None):
        d = self.data
        # SSD's square inputs are one static shape already.
        pad_size = (d.square_size,) * 2 if d.augment in _SQUARE else d.pad_size
        batch_transform = None
        if d.augment == "yolo":
            batch_transform = data.YoloBatchAugment(tuple(d.yolo_sizes), d.mixup_until_step,
                                                    seed=self.train.seed or 0)
        return data.input_pipeline(
            dataset, self.train_transform(), batch_size, training=True,
            max_boxes=d.max_boxes, size_divisor=d.size_divisor, pad_size=pad_size,
            shuffle_buffer=d.shuffle_buffer, seed=self.train.seed, shard=shard, skip=skip,
            masks=self.predicts_masks, batch_transform=batch_transform)

    def eval_pipeline(self, dataset, batch_size=1):
        d = self.data
        return data.input_pipeline(dataset, self.eval_transform(), batch_size, training=False,
                                   max_boxes=d.max_boxes, size_divisor=d.size_divisor)

    def tta_pipeline(self, dataset):
        """The evaluation pipeline for test-time augmentation (tfdet.tta): one image per batch,
        normalised but not resized (the augmentation resizes it per pass)."""
        self._check_keep_aspect()
        return self.unresized_pipeline(dataset)

    def unresized_pipeline(self, dataset):
        """One image per batch, normalised, at its own size (test-time augmentation and the
        face test resize it per pass)."""
        d = self.data
        return data.input_pipeline(dataset, data.Compose([data.Normalize(d.mean, d.std)]), 1,
                                   training=False, max_boxes=d.max_boxes, size_divisor=1)

    def evaluation_inputs(self, model, dataset, batch_size=1, tta=None, tta_scales=None,
                          face_test=None):
        """(predict, pipeline) for tfdet.evaluation.evaluate_detector: the model on the eval
        pipeline, or test-time augmentation (tta; default ModelConfig.tta) on unresized
        images, or the face test (face_test; default DataConfig.face_test: 'original' or
        'multi_scale', tfdet.evaluation.face_test). ValueError for a combination the model
        cannot run."""
        from tfdet import evaluation
        face_test = self.data.face_test if face_test is None else face_test
        face_test = "" if face_test == "square" else face_test
        tta = self.model.tta if tta is None else tta
        if tta and face_test:
            raise ValueError(f"test-time augmentation and the face test ({face_test!r}) "
                             f"are two ways to test: pick one")
        if tta:
            return (evaluation.tta_predictor(self.tta(model, tta_scales)),
                    self.tta_pipeline(dataset))
        if face_test:
            from tfdet.evaluation.face_test import face_predictor
            return face_predictor(model, face_test), self.unresized_pipeline(dataset)
        return evaluation.compiled_predictor(model), self.eval_pipeline(dataset, batch_size)

    def _check_keep_aspect(self):
        if self.data.augment in _SQUARE:
            raise ValueError("test-time augmentation resizes keeping the aspect ratio; this "
                             "config's inputs are square "
                             f"(DataConfig.augment={self.data.augment!r})")

    def tta(self, model, scales=None, flip=True):
        """The row's TestTimeAugmentation: the static zoo's scales (default) and flip, the
        config's size divisor, the model's score threshold and detection count. ValueError
        for square-input configs (SSD, YOLOv3)."""
        self._check_keep_aspect()
        from tfdet.tta import ZOO_SCALES, TestTimeAugmentation
        config = getattr(model, "config", {})
        return TestTimeAugmentation(
            model, scales or self.model.tta_scales or ZOO_SCALES, flip=flip,
            size_divisor=self.data.size_divisor,
            score_threshold=config.get("score_threshold", 0.05),
            max_detections=config.get("max_detections", 100))

    # -- model and optimisation ----------------------------------------------------------------
    def build_model(self, num_classes=None, restoring=False):
        """The configured model; restoring=True: a checkpoint is restored into it next (no
        untrained-model warning).

        A name that is no registered row is built from the config's architecture bindings (a
        new row's file). A registered row is built from its own architecture, changed by
        ModelConfig.overrides and by the config's bindings that differ from those of the row
        its file names (so `architecture.depth = 18` on a row's file changes the depth, and
        `ModelConfig.name = 'ssd_vgg16_300'` on a RetinaNet file builds that SSD row)."""
        m = self.model
        common = dict(num_classes=m.num_classes or num_classes, weights=m.weights,
                      restoring=restoring)
        if models.registered_row(m.name) is None:
            return models.get(m.name, architecture=self.architecture, **common, **m.overrides)
        overrides = {**self.architecture_changes(), **m.overrides}  # overrides win
        return models.get(m.name, **common, **overrides)

    def architecture_changes(self):
        """The config's architecture bindings that differ from those of the registered row
        its file names (all of them when the file names none); ValueError when there are
        some for another detector than the named row's."""
        detector, settings = self.architecture
        base_detector, base = detector, {}
        if self.file_row and models.registered_row(self.file_row):
            base_detector, base = models.architecture(self.file_row)
        unset = object()
        changes = {k: v for k, v in settings.items() if base.get(k, unset) != v}
        row_detector = models.architecture(self.model.name)[0]
        if detector not in (None, row_detector) and (changes or detector != base_detector):
            raise ValueError(
                f"the config binds architecture.detector = {detector!r} (with "
                f"{sorted(changes) or 'no other changes'}) but model {self.model.name!r} is a "
                f"{row_detector!r} row; give the config its own ModelConfig.name")
        return changes

    @property
    def predicts_masks(self):
        """Whether the configured model predicts instance masks (its data needs them)."""
        return models.predicts_masks(self.model.name, self.architecture)

    def learning_rate(self, global_batch_size=None):
        s, t = self.schedule, self.train
        base_lr = s.base_lr
        if t.scale_lr:
            base_lr = schedules.scaled_lr(s.base_lr, s.base_batch_size,
                                          global_batch_size or t.global_batch_size)
        return schedules.WarmupPiecewise(base_lr, s.milestones, s.gamma, s.warmup_steps,
                                         s.warmup_factor, s.factors)

    def build_optimizer(self, global_batch_size=None):
        t = self.train
        return optimizers.build_optimizer(t.optimizer, self.learning_rate(global_batch_size),
                                          t.momentum, t.weight_decay)

    def with_steps(self, steps):
        """The same schedule compressed or stretched to `steps` (milestones and warmup scale)."""
        s = self.schedule
        factor = steps / s.total_steps
        schedule = dataclasses.replace(
            s, total_steps=steps, milestones=tuple(int(m * factor) for m in s.milestones),
            warmup_steps=int(s.warmup_steps * factor))
        return dataclasses.replace(self, schedule=schedule)


def _check_exists(spec):
    """Stops at once when a spec's files are absent, naming them and the sample-data flag."""
    kind, _, rest = spec.partition(":")
    if kind in ("sample", "tfrecord") or not rest:
        return
    parts = rest.split(":")
    if kind == "voc":  # roots joined by '+', then the split name
        paths = parts[0].split("+")
    else:
        paths = [p for p in parts if p]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"data set {spec!r}: not found: {', '.join(missing)} (relative to "
            f"{os.getcwd()}). Put the data there, pass "
            f"another spec (--train_data / --eval_data / --data), or run on the built-in "
            f"data with --train_data sample --eval_data sample:val")


class _DropGinSearchMisses(logging.Filter):
    """gin logs every search-path location an include is not at; only real misses matter
    (those raise)."""

    def filter(self, record):
        return not str(record.msg).startswith("Path not found")


@contextlib.contextmanager
def _quiet_gin_search():
    root, quiet = logging.getLogger(), _DropGinSearchMisses()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


class UnsafeConfigError(ValueError):
    """A config file or binding that would import modules (and so run their code)."""


def check_config_safe(text, source, search_root=None):
    """Raises UnsafeConfigError if gin text (or a file it includes) has an `import` or
    `from ... import` line, `from __gin__ import dynamic_registration` among them: gin runs
    the imported module's code, and with dynamic registration a reference such as
    `@subprocess.getoutput()` calls any function. Without imports a config can only reach
    tfdet's registered configurables."""
    for where, statement in config_files.statements(text, source,
                                                    (search_root, config_files.CONFIGS)):
        if isinstance(statement, config_parser.ImportStatement):
            raise UnsafeConfigError(
                f"{where}:{statement.location.line_num}: '{statement.format()}' is refused: "
                f"imports in configs run code (pass --allow_config_imports, "
                f"allow_imports=True, if you trust this config)")


def load_experiment(config_file=None, bindings=(), allow_imports=False):
    """Parses a gin file plus bindings into an Experiment (gin state is reset first).

    Config files and bindings may not import modules unless allow_imports (see
    check_config_safe): a config from someone else is then data, not code."""
    gin.clear_config()
    if config_file:
        if not os.path.exists(config_file):
            raise FileNotFoundError(f"config file {config_file!r} not found")
        gin.add_config_file_search_path(config_files.configs_root(config_file))
    gin.add_config_file_search_path(config_files.CONFIGS)  # includes of the zoo's files
    if not allow_imports:
        root = config_files.configs_root(config_file) if config_file else None
        if config_file:
            with open(config_file, encoding="utf-8") as f:
                check_config_safe(f.read(), config_file, root)
        for binding in bindings:
            check_config_safe(binding, "--gin_bindings", root)
    with _quiet_gin_search():
        gin.parse_config_files_and_bindings([config_file] if config_file else [],
                                            list(bindings))
    parts = (ModelConfig(), DataConfig(), ScheduleConfig(), TrainConfig())
    arch = architecture()  # before the operative config, so that it records the bindings
    file_row = None
    if config_file:
        file_row = config_files.read_bindings(config_file).get("ModelConfig.name")
    return Experiment(*parts, config_text=gin.operative_config_str(), architecture=arch,
                      file_row=file_row)
