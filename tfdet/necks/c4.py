"""The C4 layout of two-stage detectors (Ren et al. 2015, the zoo's `faster_rcnn_r50_1x`): no
neck; the RPN and RoIAlign read C4 (stride 16) and res5 is the RoI box head."""
from tfdet.registry import NECKS


@NECKS.register("c4")
class C4Neck:
    """The registered 'c4' neck: [C2, C3, C4] -> [C4]."""

    last_stage = 4
    box_head = "res5"
    strides = (16,)
    roi_strides = (16,)

    def __init__(self, settings):
        del settings  # nothing to choose

    def __call__(self, features):
        return list(features[-1:])
