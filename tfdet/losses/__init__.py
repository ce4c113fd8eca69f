"""Losses: focal, smooth-L1 and IoU-family box losses, hard negative mining, and
replica-aware normalisers."""
from tfdet.losses.focal import sigmoid_focal_loss
from tfdet.losses.hard_negative import hard_negatives
from tfdet.losses.normalizer import positive_count, replica_mean
from tfdet.losses.regression import iou_loss, smooth_l1_loss
