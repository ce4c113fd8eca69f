"""Detectors composed of backbones, necks and heads."""
from tfdet.detectors.faster_rcnn import FasterRCNN
from tfdet.detectors.retinanet import RetinaNet
