"""Backbones: images -> multi-scale features."""
from tfdet.backbones.blazenet import blaze_block, blaze_lite_block, blazenet, blazenet_lite
from tfdet.backbones.darknet import conv_norm_leaky, darknet53
from tfdet.backbones.faceboxnet import crelu_block, faceboxnet, inception_block
from tfdet.backbones.mobilenet import mobilenet_v1
from tfdet.backbones.resnet import resnet, resnet_stage
from tfdet.backbones.vgg import vgg16
