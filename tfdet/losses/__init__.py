"""Losses: focal, smooth-L1 and IoU-family box losses."""
from tfdet.losses.focal import sigmoid_focal_loss
from tfdet.losses.regression import iou_loss, smooth_l1_loss
