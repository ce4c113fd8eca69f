"""Losses: focal, smooth-L1 and IoU-family box losses, and replica-aware normalisers."""
from tfdet.losses.focal import sigmoid_focal_loss
from tfdet.losses.normalizer import replica_mean
from tfdet.losses.regression import iou_loss, smooth_l1_loss
