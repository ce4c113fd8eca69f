"""Detectors: a backbone, a neck and heads with their training losses and post-processing."""
from tfdet.detectors.cascade_rcnn import CascadeMaskRCNN, CascadeRCNN
from tfdet.detectors.faster_rcnn import FasterRCNN
from tfdet.detectors.mask_rcnn import MaskRCNN
from tfdet.detectors.retinanet import RetinaNet
from tfdet.detectors.ssd import SSD
from tfdet.detectors.yolov3 import YOLOv3


def run_detector(model, images, image_sizes=None, training=False):
    """model(images) -> detection dict, passing image_sizes [B, 2] (h, w of each image before
    padding) to the detectors that clip to it (Faster / Mask R-CNN, YOLOv3); the others clip
    to the padded input or not at all."""
    import inspect
    if image_sizes is not None and "image_sizes" in inspect.signature(model.call).parameters:
        return model(images, training=training, image_sizes=image_sizes)
    return model(images, training=training)
