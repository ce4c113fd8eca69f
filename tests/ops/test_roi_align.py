"""RoIAlign against a numpy transcription of torchvision's CPU kernel (loops), plus the edge
cases, the adjoint (gradient) identity, XLA and the FPN level rule, for both computations
(crop_and_resize + average pool, and the gather of bilinear taps)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfdet import ops


def np_bilinear(f, y, x):
    h, w = f.shape[:2]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(f.shape[2])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_high = y_low = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_high = x_low = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * f[y_low, x_low] + hy * lx * f[y_low, x_high]
            + ly * hx * f[y_high, x_low] + ly * lx * f[y_high, x_high])


def np_roi_align(f, box, out, scale, ratio, aligned):
    """One RoI on one [H, W, C] map, as torchvision's roi_align_forward_kernel_impl."""
    oh, ow = out
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - off for v in box)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bh, bw = rh / oh, rw / ow
    gh = ratio if ratio > 0 else math.ceil(rh / oh)
    gw = ratio if ratio > 0 else math.ceil(rw / ow)
    count = max(gh * gw, 1)
    res = np.zeros((oh, ow, f.shape[2]))
    for ph in range(oh):
        for pw in range(ow):
            acc = np.zeros(f.shape[2])
            for iy in range(max(gh, 0)):
                y = y1 + ph * bh + (iy + 0.5) * bh / gh
                for ix in range(max(gw, 0)):
                    x = x1 + pw * bw + (ix + 0.5) * bw / gw
                    acc += np_bilinear(f, y, x)
            res[ph, pw] = acc / count
    return res


def random_case(seed, b=2, h=13, w=17, c=3, r=9, image=64.0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(b, h, w, c)).astype(np.float32)
    xy = rng.uniform(-10, image, (b, r, 2))
    wh = rng.uniform(0.2, 40, (b, r, 2))
    boxes = np.concatenate([xy, xy + wh], -1)
    boxes[0, 0] = [-30, -30, -5, -4]          # wholly outside (above-left)
    boxes[0, 1] = [60, 50, 90, 80]            # partly outside (bottom-right)
    boxes[1, 0] = [10, 10, 10.2, 10.1]        # tiny
    boxes[1, 1] = [0, 0, image, image * 0.8]  # the whole map
    return features, boxes.astype(np.float32)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio,method", [(2, "crop"), (2, "gather"), (1, "crop"), (3, "crop"),
                                          (0, "auto"), (-1, "auto")])
def test_roi_align_matches_torchvision_reference(aligned, ratio, method):
    features, boxes = random_case(ratio + 3)
    scale = 0.25
    got = ops.roi_align(features, boxes, (7, 5), spatial_scale=scale, sampling_ratio=ratio,
                        aligned=aligned, method=method).numpy()
    assert got.shape == (2, 9, 7, 5, 3)
    for b in range(2):
        for r in range(9):
            ref = np_roi_align(features[b], boxes[b, r], (7, 5), scale, ratio, aligned)
            np.testing.assert_allclose(got[b, r], ref, atol=2e-5, err_msg=f"roi {b},{r}")
    assert np.abs(got[0, 0]).max() == 0  # wholly outside the map: zeros, as torchvision


@pytest.mark.parametrize("budget", [1, 500])
def test_rois_in_chunks_give_the_same_values_and_gradients(monkeypatch, budget):
    """A small gather budget sends the RoIs through one (budget 1) or a few at a time: the
    values, an XLA-compiled run and the gradient equal the numpy reference / one-chunk run."""
    import sys
    module = sys.modules["tfdet.ops.roi_align"]
    features, boxes = random_case(3)
    f = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(f)
        whole = ops.roi_align(f, boxes, 4, 0.25, 0, True)
        value = tf.reduce_sum(whole * tf.range(1.0, 1.0 + tf.size(whole, tf.float32).numpy()
                                               ).numpy().reshape(whole.shape))
    grad_whole = tape.gradient(value, f)
    monkeypatch.setattr(module, "_GATHER_BUDGET", budget)
    with tf.GradientTape() as tape:
        tape.watch(f)
        chunked = ops.roi_align(f, boxes, 4, 0.25, 0, True)
        value = tf.reduce_sum(chunked * tf.range(1.0, 1.0 + tf.size(chunked, tf.float32).numpy()
                                                 ).numpy().reshape(chunked.shape))
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(value, f).numpy(), grad_whole.numpy(), rtol=1e-5,
                               atol=1e-4)
    for r in range(9):
        ref = np_roi_align(features[1], boxes[1, r], (4, 4), 0.25, 0, True)
        np.testing.assert_allclose(chunked[1, r].numpy(), ref, atol=2e-5)
    compiled = tf.function(lambda x, b: ops.roi_align(x, b, 4, 0.25, 0, True), jit_compile=True)
    np.testing.assert_allclose(compiled(features, boxes).numpy(), whole.numpy(), atol=1e-5)


@pytest.mark.parametrize("method", ["crop", "gather"])
def test_empty_box_set_gives_an_empty_result(method):
    features, _ = random_case(0)
    out = ops.roi_align(features, np.zeros((2, 0, 4), np.float32), 7, 0.25, 2, method=method)
    assert out.shape == (2, 0, 7, 7, 3)
    levels = [features, features[:, ::2, ::2]]
    out = ops.multilevel_roi_align(levels, np.zeros((2, 0, 4), np.float32), 7, 2, 2,
                                   method=method)
    assert out.shape == (2, 0, 7, 7, 3)


@pytest.mark.parametrize("method", ["crop", "gather"])
def test_gradient_is_the_adjoint_of_the_sampling(method):
    features, boxes = random_case(5)
    weights = tf.random.stateless_normal([2, 9, 4, 4, 3], [1, 2])
    f = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(f)
        value = tf.reduce_sum(ops.roi_align(f, boxes, 4, 0.25, 2, method=method) * weights)
    grad = tape.gradient(value, f)
    # roi_align is linear in the features: <grad, F> = <weights, roi_align(F)> = value.
    assert float(tf.reduce_sum(grad * f)) == pytest.approx(float(value), rel=1e-4)
    assert float(tf.reduce_max(tf.abs(grad))) > 0
    # And the gradient of one output pixel is its bilinear taps: compare with numpy.
    with tf.GradientTape() as tape:
        tape.watch(f)
        value = ops.roi_align(f, boxes, 4, 0.25, 2, method=method)[1, 3, 2, 1, 0]
    grad = tape.gradient(value, f).numpy()
    basis = np.zeros_like(features[1])
    expected = np.zeros(features.shape[1:3])
    for y in range(features.shape[1]):
        for x in range(features.shape[2]):
            basis[...] = 0
            basis[y, x, 0] = 1
            expected[y, x] = np_roi_align(basis, boxes[1, 3], (4, 4), 0.25, 2, False)[2, 1, 0]
    np.testing.assert_allclose(grad[1, :, :, 0], expected, atol=1e-6)
    assert not grad[0].any() and not grad[1, :, :, 1:].any()


def _graph_ops(fn, *args):
    return {op.type for op in fn.get_concrete_function(*args).graph.get_operations()}


def test_compiles_with_xla_and_gives_the_same_values():
    """'auto' crops with CropAndResize in a plain graph and, under XLA (which has no
    CropAndResize kernel), gathers: the two give the same values."""
    features, boxes = random_case(7)
    plain = tf.function(lambda f, b: ops.roi_align(f, b, 7, 0.25, 2))
    compiled = tf.function(lambda f, b: ops.roi_align(f, b, 7, 0.25, 2), jit_compile=True)
    assert "CropAndResize" in _graph_ops(plain, features, boxes)
    assert "CropAndResize" not in _graph_ops(compiled, features, boxes)
    np.testing.assert_allclose(compiled(features, boxes).numpy(),
                               plain(features, boxes).numpy(), atol=2e-5)
    with pytest.raises(ValueError, match="fixed sampling_ratio"):
        ops.roi_align(features, boxes, 7, 0.25, 0, method="crop")
    with pytest.raises(ValueError, match="method must be one of"):
        ops.RoIPooler(7, (4, 8), 2, method="bilinear")


@pytest.mark.parametrize("method", ["crop", "gather"])
def test_fpn_level_rule_and_multilevel_sampling(method):
    boxes = np.array([[[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 111, 111], [0, 0, 448, 448],
                       [0, 0, 10, 10], [0, 0, 2000, 2000]]], np.float32)
    np.testing.assert_array_equal(ops.roi_levels(boxes).numpy(), [[4, 3, 2, 5, 2, 5]])
    rng = np.random.default_rng(11)
    sizes = {2: (32, 40), 3: (16, 20), 4: (8, 10), 5: (4, 5)}
    features = [rng.normal(size=(1, h, w, 2)).astype(np.float32) for h, w in sizes.values()]
    xy = rng.uniform(0, 100, (1, 12, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 150, (1, 12, 2))], -1).astype(np.float32)
    got = ops.multilevel_roi_align(features, boxes, 7, min_level=2, sampling_ratio=2,
                                   method=method).numpy()
    levels = ops.roi_levels(boxes).numpy()[0]
    for r in range(12):
        level = int(levels[r])
        ref = np_roi_align(features[level - 2][0], boxes[0, r], (7, 7), 2.0 ** -level, 2, False)
        np.testing.assert_allclose(got[0, r], ref, atol=2e-5, err_msg=f"roi {r} level {level}")
    assert len(set(levels.tolist())) > 1
