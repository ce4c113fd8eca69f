"""The evaluation predictor hands each image's size before padding to the detectors that clip
to it (Faster / Mask R-CNN, YOLOv3), and leaves the others as they are."""
import numpy as np
import tensorflow as tf

from tfdet import models
from tfdet.evaluation import compiled_predictor


def test_predictor_passes_image_sizes_to_detectors_that_clip_to_them():
    yolo = models.get("yolov3_mobilenet_v1", num_classes=2, width=0.25, objectness_prior=0.5)
    images = tf.random.stateless_uniform([2, 160, 160, 3], [1, 2])
    sizes = tf.constant([[100.0, 90.0], [160.0, 120.0]])
    out = compiled_predictor(yolo)(images, sizes)
    direct = yolo(images, image_sizes=sizes)
    np.testing.assert_allclose(out["boxes"].numpy(), direct["boxes"].numpy(), atol=1e-4)
    for b, (h, w) in enumerate(sizes.numpy()):
        n = int(out["num_detections"][b])
        boxes = out["boxes"][b, :n].numpy()
        assert n > 0 and boxes[:, [0, 2]].max() <= w + 1e-4 and boxes[:, [1, 3]].max() <= h + 1e-4
    # Unclipped, boxes reach past those sizes: the sizes made the difference.
    padded = yolo(images)["boxes"].numpy()
    assert padded[0, :, [0, 2]].max() > 90.0
    # A detector without image_sizes runs through the same predictor.
    ssd = models.get("ssd_mobilenet_v1_voc", num_classes=2, image_size=160, width=0.25)
    out = compiled_predictor(ssd)(images, sizes)
    np.testing.assert_allclose(out["scores"].numpy(), ssd(images)["scores"].numpy(), atol=1e-5)
