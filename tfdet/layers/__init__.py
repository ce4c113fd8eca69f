"""Keras layers with weights used across backbones, necks and heads."""
from tfdet.layers.norm import NORM_KINDS, AffineChannel, make_norm
from tfdet.layers.l2norm import L2Normalization
from tfdet.layers.deform_conv import DeformableConv2D
from tfdet.layers.pool import PaddedMaxPool2D
from tfdet.layers.crop import CropToMatch
