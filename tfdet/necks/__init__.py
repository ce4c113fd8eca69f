"""Necks: multi-scale feature fusion and extra feature levels."""
from tfdet.necks.blazeface import blaze_fpn, blazeface_neck, ssh_module
from tfdet.necks.c4 import C4Neck
from tfdet.necks.fpn import FPNNeck, fpn
from tfdet.necks.ssd_extras import ssd_extra_layers
from tfdet.necks.yolo_fpn import yolo_fpn
