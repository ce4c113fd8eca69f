"""Registries: name -> builder, one signature per registry (Model Garden's factories,
detectron2's registries). Configs name parts by these names; detectors look their parts up
here instead of testing strings.

    DETECTORS       'retinanet' -> RetinaNet, ... (the class; `architecture.detector` in configs)
    BACKBONES       name -> builder(settings, last_stage) -> keras.Model: images [B, H, W, 3] ->
                    [C2, ..., C{last_stage}] (strides 4, 8, ...); 'resnet' (depth, variant,
                    groups, group_width, norm, freeze_at, dcn_stages); `backbone` in configs
    NECKS           name -> builder(settings) -> a neck: `neck(features)` -> maps, with
                    `last_stage` (the backbone stage it reads up to), `strides` (of its maps),
                    `roi_strides` (the maps RoIs pool from) and `box_head` (the RoI box head
                    that suits it); 'fpn', 'c4'; `neck` in configs
    ROI_BOX_HEADS   name -> builder(settings, num_classes, channels, name, class_agnostic) ->
                    a built layer: pooled [B, R, s, s, C] -> (logits [B, R, K + 1], deltas);
                    'fc' (the 2fc / 4conv1fc head), 'res5' (C4); `box_head` in configs
    POSTPROCESSORS  name -> builder(settings) -> nms(boxes, scores) -> the detection dict;
                    'hard' (per-class NMS), 'soft' (per-class soft-NMS); `nms` in configs
    SSD_BACKBONES   name -> builder(config) -> (input, [feature maps]): the maps SSD's heads
                    read, extra layers included; `config` is the SSD's config dict
    YOLO_BACKBONES  name -> builder(config) -> (input, [C3, C4, C5]); `config` is YOLOv3's

`settings` is always the detector's whole config dict; a builder reads the keys it needs.
Registering a new name (a user's backbone) makes it available to configs:

    @BACKBONES.register("my_net")
    def _my_net(settings, last_stage): ...     # architecture.backbone = 'my_net'

Detectors also accept built parts directly (`FasterRCNN(parts={"backbone": model})`); the
registries are how configs name them.
"""


class Registry:
    """Named builders of one kind. `register(name)` decorates a builder; `get(name)` returns
    it, with a clear error listing the registered names."""

    def __init__(self, kind):
        self.kind = kind
        self._builders = {}

    def register(self, name):
        def add(builder):
            if name in self._builders and self._builders[name] is not builder:
                raise ValueError(f"{self.kind} {name!r} is registered already "
                                 f"({self._builders[name]!r})")
            self._builders[name] = builder
            return builder
        return add

    def get(self, name):
        try:
            return self._builders[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: "
                             f"{', '.join(self.names())}") from None

    def name_of(self, builder):
        """The name a builder is registered under (KeyError if none)."""
        for name, value in self._builders.items():
            if value is builder:
                return name
        raise KeyError(f"{builder!r} is not a registered {self.kind}")

    def names(self):
        return sorted(self._builders)

    def __contains__(self, name):
        return name in self._builders


DETECTORS = Registry("detector")
SSD_BACKBONES = Registry("SSD backbone")
YOLO_BACKBONES = Registry("YOLOv3 backbone")
BACKBONES = Registry("backbone")
NECKS = Registry("neck")
ROI_BOX_HEADS = Registry("RoI box head")
POSTPROCESSORS = Registry("post-processor")

