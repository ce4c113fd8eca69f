"""Detectors: a backbone, a neck and heads with their training losses and post-processing."""
from tfdet.detectors.faster_rcnn import FasterRCNN
from tfdet.detectors.mask_rcnn import MaskRCNN
from tfdet.detectors.retinanet import RetinaNet
from tfdet.detectors.ssd import SSD
from tfdet.detectors.yolov3 import YOLOv3
