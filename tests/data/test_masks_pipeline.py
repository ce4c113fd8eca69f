"""Instance masks through the input pipeline: rasterised as pycocotools draws them, resized
and flipped with the image, padded per batch."""
import json

import numpy as np
import tensorflow as tf
from pycocotools import mask as mask_utils

from tests.conftest import require_shared
from tfdet import data
from tfdet.data.pipeline import rasterize_segmentations


def test_rasterize_polygons_rle_and_missing():
    polygon = [[2, 2, 10, 2, 10, 6, 2, 6]]  # an 8 x 4 rectangle
    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((3, 3), np.uint8),
                                                     [[5, 4], [1, 8]])))
    rle["counts"] = rle["counts"].decode()
    uncompressed = {"size": [12, 12], "counts": [12 * 3 + 4, 2, 10, 2, 12 * 12 - 54]}
    masks = rasterize_segmentations(
        [json.dumps(polygon), json.dumps(rle), "", json.dumps(uncompressed)], 12, 12)
    assert masks.shape == (4, 12, 12) and masks.dtype == np.uint8
    np.testing.assert_array_equal(
        masks[0], mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, 12, 12))))
    assert masks[1].sum() == 9 and masks[1][5:8, 1:4].all()
    assert not masks[2].any()
    # column-major runs: 40 zeros, 2 ones (column 3, rows 4-5), 10 zeros, 2 ones (column 4).
    assert masks[3].sum() == 4 and masks[3][4:6, 3:5].all()


def test_coco_masks_follow_the_image_through_resize_and_flip():
    root = require_shared("coco128")
    dataset = data.load_dataset(f"coco:{root}/annotations/instances_train2017_first128.json:"
                                f"{root}/images/train2017")
    dataset.examples = [ex for ex in dataset.examples if ex.image_id == 34]  # one zebra
    ex = dataset.examples[0]
    reference = mask_utils.decode(mask_utils.merge(
        mask_utils.frPyObjects(ex.masks[0], ex.height, ex.width)))
    for flip in (0.0, 1.0):
        transform = data.Compose([data.ResizeKeepAspect(160, 160),
                                  data.RandomHorizontalFlip(flip)])
        batch = next(iter(data.input_pipeline(dataset, transform, 1, training=False,
                                              masks=True, max_boxes=4)))
        masks = batch["masks"].numpy()
        h, w = batch["image_size"].numpy()[0]
        assert masks.shape == (1, 4, *batch["images"].shape[1:3])  # padded as the image
        assert not masks[0, 1:].any() and not masks[0, 0, h:].any()
        expected = tf.image.resize(reference[..., None].astype(np.float32), (h, w)).numpy()
        expected = (expected[..., 0] >= 0.5).astype(np.uint8)
        if flip:
            expected = expected[:, ::-1]
        np.testing.assert_array_equal(masks[0, 0, :h, :w], expected)
        ys, xs = np.nonzero(masks[0, 0])
        x1, y1, x2, y2 = batch["boxes"].numpy()[0, 0]
        # the mask fills its box to within a pixel or two
        assert abs(xs.min() - x1) <= 2 and abs(xs.max() + 1 - x2) <= 2
        assert abs(ys.min() - y1) <= 2 and abs(ys.max() + 1 - y2) <= 2
