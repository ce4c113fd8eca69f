"""How a detector gets its parts (detectron2's `@configurable` in one helper): each part is
either given to the constructor already built (`parts={"backbone": model, ...}`) or built
from the detector's settings by the registered builder the settings name (tfdet.registry).

Also registers the post-processors: `nms = 'hard'` (per-class NMS: nms_iou, score_threshold,
max_detections per class and in all, and pre_nms_top_k where the settings have it) and
`nms = 'soft'` (per-class Gaussian soft-NMS: soft_nms_sigma, score_threshold,
max_detections) and `nms = 'blend'` (BlazeFace's box blending, MediaPipe's weighted NMS, per
class: nms_iou, score_threshold, max_detections, pre_nms_top_k; for boxes shared by the
classes, the one-stage detectors').
"""
from tfdet import backbones, heads, necks, ops  # noqa: F401 (they register the built-in parts)
from tfdet.registry import POSTPROCESSORS


@POSTPROCESSORS.register("hard")
def multiclass_nms(settings):
    return ops.MultiClassNMS(settings["nms_iou"], settings["score_threshold"],
                             settings["max_detections"], settings["max_detections"],
                             settings.get("pre_nms_top_k"))


@POSTPROCESSORS.register("soft")
def multiclass_soft_nms(settings):
    return ops.MultiClassSoftNMS(settings["soft_nms_sigma"], settings["score_threshold"],
                                 settings["max_detections"])


@POSTPROCESSORS.register("blend")
def multiclass_weighted_nms(settings):
    return ops.MultiClassWeightedNMS(settings["nms_iou"], settings["score_threshold"],
                                     settings["max_detections"], settings.get("pre_nms_top_k"))


class GivenParts:
    """The built parts given to a detector, by name. `take(name, build)` returns the given
    part, else build(); a name the detector does not take is a ValueError listing those it
    does."""

    def __init__(self, detector, names, parts):
        parts = dict(parts or {})
        unknown = sorted(set(parts) - set(names))
        if unknown:
            raise ValueError(f"{detector} takes the parts {', '.join(names)}; got "
                             f"unknown {', '.join(unknown)}")
        self._parts = parts

    def take(self, name, build):
        part = self._parts.get(name)
        return build() if part is None else part
