"""Mask targets and mask pasting against numpy references and hand-computed values."""
import numpy as np
import pytest

from tests.ops.test_roi_align import np_roi_align
from tfdet import ops


def np_paste(mask, box, height, width):
    """torchvision's paste: grid_sample(align_corners=False, zero padding) at pixel centres."""
    h, w = mask.shape
    x1, y1, x2, y2 = box
    out = np.zeros((height, width))
    for i in range(height):
        v = (i + 0.5 - y1) / (y2 - y1) * h - 0.5
        for j in range(width):
            u = (j + 0.5 - x1) / (x2 - x1) * w - 0.5
            y0, x0 = int(np.floor(v)), int(np.floor(u))
            total = 0.0
            for yy, wy in ((y0, 1 - (v - y0)), (y0 + 1, v - y0)):
                for xx, wx in ((x0, 1 - (u - x0)), (x0 + 1, u - x0)):
                    if 0 <= yy < h and 0 <= xx < w:
                        total += wy * wx * mask[yy, xx]
            out[i, j] = total
    return out


def test_paste_matches_reference_and_a_hand_value():
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=(2, 3, 7, 5)).astype(np.float32)
    boxes = np.array([[[2, 3, 20, 15], [-4, 0, 10, 30], [15.5, 8.2, 24, 29]],
                      [[0, 0, 24, 30], [5, 5, 6, 7], [30, 40, 50, 60]]], np.float32)
    got = ops.paste_masks(masks, boxes, 30, 24).numpy()
    assert got.shape == (2, 3, 30, 24)
    for b in range(2):
        for n in range(3):
            np.testing.assert_allclose(got[b, n], np_paste(masks[b, n], boxes[b, n], 30, 24),
                                       atol=1e-5, err_msg=f"{b},{n}")
    assert not got[1, 2].any()  # a box outside the image pastes nothing
    # A 2x2 mask of ones on [2, 6): pixel 2 (centre 2.5) is at mask coordinate -0.25, three
    # quarters inside -> 0.75 on each axis; pixel 3 is fully inside; pixel 1 (-0.75) keeps a
    # quarter and pixel 0 (-1.25) nothing; pixel 6 (1.75) a quarter, pixel 7 (2.25) nothing.
    one = ops.paste_masks(np.ones((1, 1, 2, 2), np.float32),
                          np.array([[[2, 2, 6, 6]]], np.float32), 8, 8).numpy()[0, 0]
    assert one[2, 2] == pytest.approx(0.75 * 0.75)
    assert one[3, 3] == pytest.approx(1.0) and one[3, 2] == pytest.approx(0.75)
    assert one[1, 3] == pytest.approx(0.25) and one[6, 3] == pytest.approx(0.25)
    assert one[0, 3] == 0.0 and one[7, 3] == 0.0


def test_mask_targets_crop_the_matched_instance():
    masks = np.zeros((1, 2, 40, 40), np.float32)
    masks[0, 0, 10:30, 10:30] = 1  # instance 0: a square
    masks[0, 1, 0:20, 20:40] = 1   # instance 1: the top-right quarter
    boxes = np.array([[[10, 10, 30, 30], [0, 0, 20, 20], [20, 0, 40, 20], [5, 5, 35, 25]]],
                     np.float32)
    matched = np.array([[0, 0, 1, 0]], np.int32)
    got = ops.mask_targets(masks, boxes, matched, size=28).numpy()
    assert got.shape == (1, 4, 28, 28)
    assert got[0, 0].all() and got[0, 2].all()  # the RoI is its instance's box
    for r in range(4):
        crop = np_roi_align(masks[0, matched[0, r], :, :, None], boxes[0, r], (28, 28), 1.0, 1,
                            True)[..., 0]
        np.testing.assert_array_equal(got[0, r], (crop >= 0.5).astype(np.float32))
    assert 0 < got[0, 1].mean() < 0.5  # the square covers a quarter of [0, 20)^2
