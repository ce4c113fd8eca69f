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


def _faces_sample(h, w, faces):
    """A coordinate image (channel 0 = x, 1 = y, 2 = 7 inside the image) with face boxes."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([x, y, np.full_like(x, 7.0)], -1)
    n = len(faces)
    return {"image": tf.constant(image), "boxes": tf.constant(faces, tf.float32),
            "classes": tf.zeros([n], tf.int32), "is_crowd": tf.zeros([n], tf.bool),
            "difficult": tf.zeros([n], tf.bool), "scale": tf.ones([2])}


def _window_of(image, target):
    """(x0, y0, side) of the square window an anchor crop resized to target x target:
    output pixel j holds the original x0 + (j + 0.5) side / target - 0.5 (pixel centres),
    read from two pixels inside the original image (channel 2 = 7)."""
    inside = np.argwhere(image[..., 2] > 6.9)
    (r0, c0), (r1, c1) = inside[0], inside[-1]
    side = (image[r1, c1, 0] - image[r0, c0, 0]) * target / (c1 - c0)
    x0 = image[r0, c0, 0] + 0.5 - (c0 + 0.5) * side / target
    y0 = image[r0, c0, 1] + 0.5 - (r0 + 0.5) * side / target
    return x0, y0, side


def test_data_anchor_crop_gives_the_face_an_anchor_scale():
    """One 100 x 80 face (area 8000 > 64^2: size class R = 2 of (16, 32, 64, 128)): each
    anchor crop gives it a width of U(s_r / 2, 2 s_r) at the target size for r in 0..2, so
    within [8, 128], both below 16 (r = 0) and above 64 (r = 2) over the seeds; its box is
    the face mapped through the crop's window, read back from the pixels, and pixels of the
    window outside the image are zero."""
    target = 320
    face = [200.0, 150.0, 300.0, 230.0]
    sample = _faces_sample(400, 500, [face])
    crop = data.DataAnchorSamplingCrop(target_size=target, sampling_prob=0.0)
    widths = []
    for i in range(40):
        out = crop(sample, tf.constant([i, 11], tf.int64))
        image, boxes = out["image"].numpy(), out["boxes"].numpy()
        assert image.shape == (target, target, 3) and boxes.shape == (1, 4)
        x0, y0, side = _window_of(image, target)
        expected = (np.asarray(face) - [x0, y0, x0, y0]) * target / side
        np.testing.assert_allclose(boxes[0], expected, atol=0.05 * target / side + 1e-3)
        widths.append(100.0 * target / side)
        outside = (image[..., 2] < 6.9)
        assert np.all(image[outside] == 0) or not outside.any()
    widths = np.asarray(widths)
    assert widths.min() >= 8 - 1e-3 and widths.max() <= 128 + 1e-3
    assert (widths < 16).any() and (widths > 64).any()
    # Deterministic per seed.
    again = crop(sample, tf.constant([3, 11], tf.int64))["boxes"].numpy()
    np.testing.assert_array_equal(again, crop(sample, tf.constant([3, 11], tf.int64))[
        "boxes"].numpy())


def test_data_anchor_crop_of_a_small_face_stays_within_twice_its_size():
    """A 10 x 12 face (area 120 < 16^2: R = 0): its width at the target is U(8, 2 sqrt(120))
    = U(8, 21.9)."""
    sample = _faces_sample(300, 300, [[140.0, 140.0, 150.0, 152.0]])
    crop = data.DataAnchorSamplingCrop(target_size=256, sampling_prob=0.0)
    for i in range(10):
        out = crop(sample, tf.constant([i, 5], tf.int64))
        box = out["boxes"].numpy()[0]
        assert 8 - 1e-2 <= box[2] - box[0] <= 2 * np.sqrt(120) + 1e-2


def test_square_crops_hold_a_whole_face_and_drop_the_ones_whose_centre_leaves():
    faces = [[40.0, 60.0, 90.0, 110.0], [250.0, 150.0, 330.0, 240.0], [5.0, 5.0, 25.0, 25.0]]
    sample = _faces_sample(300, 400, faces)
    crop = data.DataAnchorSamplingCrop(target_size=640, sampling_prob=1.0)
    cropped = 0
    for i in range(15):
        out = crop(sample, tf.constant([i, 2], tf.int64))
        image, boxes = out["image"].numpy(), out["boxes"].numpy()
        h, w = image.shape[:2]
        if (h, w) == (300, 400):
            continue
        cropped += 1
        x0, y0 = image[0, 0, 0], image[0, 0, 1]
        assert abs(h - w) <= 1 and 0.3 * 300 - 1 <= h <= 300
        window = np.array([x0, y0, x0 + w, y0 + h])
        original = np.asarray(faces)
        centres = (original[:, :2] + original[:, 2:]) / 2
        # The window starts within a pixel after its floored corner (read from the pixels).
        surely = ((centres >= window[:2] + 1) & (centres <= window[2:] - 1)).all(1)
        maybe = ((centres >= window[:2] - 1) & (centres <= window[2:] + 1)).all(1)
        whole = ((original[:, :2] >= window[:2] - 1) & (original[:, 2:] <= window[2:] + 1)).all(1)
        assert whole.any() and surely.sum() <= len(boxes) <= maybe.sum()
        for box in boxes:  # each kept box is an original one moved by the window, clipped
            moved = np.clip(original - [x0, y0, x0, y0], 0, [w, h, w, h])
            assert np.abs(moved - box).max(axis=1).min() < 1.01
    assert cropped >= 10


def test_survivors_by_hand_and_faceless_samples_pass_through():
    from tfdet.data.ssd_augment import _survivors
    boxes = tf.constant([[10, 10, 20, 20],      # 6.4 px at target 64: under 8 px, dropped
                         [10, 10, 30, 30],      # 12.8 px: kept
                         [90, 90, 130, 130],    # centre (110, 110) outside: dropped
                         [80, 80, 110, 110]],   # centre inside: kept, clipped to 100
                        tf.float32)
    keep, relative = _survivors(boxes, tf.constant([0.0, 0.0, 100.0, 100.0]), 64, 8.0)
    np.testing.assert_array_equal(keep.numpy(), [False, True, False, True])
    np.testing.assert_allclose(relative.numpy()[3], [80, 80, 100, 100])
    empty = _faces_sample(50, 60, np.zeros((0, 4), np.float32))
    for prob in (0.0, 1.0):
        out = data.DataAnchorSamplingCrop(target_size=32, sampling_prob=prob)(
            empty, tf.constant([1, 2], tf.int64))
        assert out["image"].shape == (50, 60, 3)


def test_face_training_pipeline_gives_square_images():
    sample = _faces_sample(240, 320, [[100.0, 80.0, 160.0, 150.0]])
    transform = data.ssd_transforms(True, 64, crop="data_anchor")
    for i in range(4):
        out = transform(sample, tf.constant([i, 9], tf.int64))
        assert out["image"].shape == (64, 64, 3)
        boxes = out["boxes"].numpy()
        assert len(boxes) <= 1 and (boxes >= -1e-3).all() and (boxes <= 64 + 1e-3).all()
    with pytest.raises(ValueError, match="crop must be"):
        data.ssd_transforms(True, 64, crop="random")
