"""Detectors composed of backbones, necks and heads."""
from tfdet.detectors.retinanet import RetinaNet
