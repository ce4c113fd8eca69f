"""SSD augmentation: the crop honours its IoU constraint and keeps exactly the boxes whose
centres it contains, the expand moves boxes with the image, the distortion stays in range;
read back from images whose pixels encode their own coordinates."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import data
from tfdet.ops import box_iou


def _coordinate_sample(h=200, w=240):
    """An image whose channel 0 is x and channel 1 is y, with three boxes."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([x, y, np.full_like(x, 7.0)], -1)
    boxes = np.array([[10, 20, 90, 100], [120, 40, 230, 190], [60, 150, 100, 195]], np.float32)
    return {"image": tf.constant(image), "boxes": tf.constant(boxes),
            "classes": tf.constant([0, 1, 2]), "is_crowd": tf.zeros([3], tf.bool),
            "difficult": tf.zeros([3], tf.bool), "scale": tf.ones([2])}


@pytest.mark.parametrize("min_iou", [0.3, 0.7])
def test_min_iou_crop(min_iou):
    sample = _coordinate_sample()
    crop = data.MinIoURandomCrop(min_ious=(min_iou,), allow_no_crop=False)
    cropped_any = False
    for i in range(20):
        out = crop(sample, tf.constant([i, 3], tf.int64))
        image = out["image"].numpy()
        x1, y1 = image[0, 0, 0], image[0, 0, 1]  # where the window starts
        h, w = image.shape[:2]
        if (h, w) == (200, 240):
            continue  # no window satisfied the constraint within the attempts
        cropped_any = True
        window = np.array([[x1, y1, x1 + w, y1 + h]], np.float32)
        original = sample["boxes"].numpy()
        assert box_iou(window, original).numpy().max() >= min_iou - 0.02  # pixel rounding
        # The window is rounded out to whole pixels after the centre test: a centre a pixel
        # inside the rounded window was in the window, one outside it was not.
        centres = (original[:, :2] + original[:, 2:]) / 2
        surely_in = np.all((centres > window[0, :2] + 1) & (centres < window[0, 2:] - 1), 1)
        surely_out = ~np.all((centres > window[0, :2]) & (centres < window[0, 2:]), 1)
        kept = out["classes"].numpy()
        assert set(np.flatnonzero(surely_in)) <= set(kept)
        assert not set(np.flatnonzero(surely_out)) & set(kept)
        expected = np.clip(original[kept] - [x1, y1, x1, y1], 0, [w, h, w, h])
        np.testing.assert_allclose(out["boxes"].numpy(), expected, atol=1e-4)
    assert cropped_any


def test_expand_moves_the_boxes_with_the_image():
    sample = _coordinate_sample(60, 80)
    expand = data.RandomExpand(max_ratio=3.0, prob=1.0, fill=(0.0, 0.0, 0.0))
    out = expand(sample, tf.constant([5, 6], tf.int64))
    image = out["image"].numpy()
    assert image.shape[0] >= 60 and image.shape[1] >= 80
    ys, xs = np.nonzero(image[..., 2] == 7.0)  # the original image's footprint
    top, left = ys.min(), xs.min()
    assert (ys.max() - top + 1, xs.max() - left + 1) == (60, 80)
    np.testing.assert_allclose(out["boxes"].numpy(),
                               sample["boxes"].numpy() + [left, top, left, top])
    assert image[top + 5, left + 9, 0] == 9.0  # pixel (x 9, y 5) of the original


def test_photometric_distort_stays_in_range_and_is_seeded():
    sample = _coordinate_sample()
    distort = data.PhotometricDistort(prob=1.0)
    a = distort(sample, tf.constant([1, 2], tf.int64))["image"].numpy()
    b = distort(sample, tf.constant([1, 2], tf.int64))["image"].numpy()
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 255.0 and not np.allclose(a, sample["image"])


def test_ssd_training_pipeline_gives_square_batches():
    train = data.load_dataset("sample:train")
    transform = data.ssd_transforms(True, 128, mean=(127.5,) * 3, std=(127.5,) * 3)
    batch = next(iter(data.input_pipeline(train, transform, 4, training=True, seed=0,
                                          pad_size=(128, 128))))
    assert batch["images"].shape == (4, 128, 128, 3)
    n = batch["num_boxes"].numpy()
    boxes = batch["boxes"].numpy()
    for b in range(4):
        assert np.all(boxes[b, :n[b]] >= 0) and np.all(boxes[b, :n[b]] <= 128)
        assert np.all(boxes[b, :n[b], 2:] > boxes[b, :n[b], :2])
