"""Backbones: images -> multi-scale features."""
from tfdet.backbones.resnet import resnet, resnet_stage
