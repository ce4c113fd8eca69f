"""Norm folding (tfdet.export.fold_norms): the folded weights by hand, the same outputs on
zoo rows, the pairs it must leave alone, and the fused kernels TensorFlow then runs."""
import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet import data, models
from tfdet.export import export_saved_model, fold_norms
from tfdet.layers import AffineChannel
from tfdet.layers.norm import BatchNorm, GroupNorm


def _randomise_norms(model, seed=0):
    """Statistics, scales and shifts away from the identity (a fresh model's are 0 / 1)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        name = v.path.split("/")[-1]
        low, high = {"moving_variance": (0.5, 2.0), "moving_mean": (-0.5, 0.5),
                     "gamma": (0.5, 1.5), "beta": (-0.5, 0.5), "scale": (0.5, 1.5),
                     "bias": (-0.5, 0.5)}.get(name, (None, None))
        if low is not None:
            v.assign(rng.uniform(low, high, v.shape).astype(np.float32))


def _small_model():
    x = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv_a")(x)
    a = BatchNorm(epsilon=1e-3, name="bn_a")(a)
    a = keras.layers.ReLU()(a)
    b = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw_b")(a)
    b = AffineChannel(name="affine_b")(b)
    shared = keras.layers.Conv2D(8, 1, use_bias=False, name="conv_shared")(b)
    c = BatchNorm(name="bn_shared")(shared)  # its conv's output is read twice: left alone
    d = keras.layers.Conv2D(8, 1, activation="relu", name="conv_relu")(c + shared)
    d = BatchNorm(name="bn_after_relu")(d)  # a conv with an activation: left alone
    e = keras.layers.Conv2D(8, 1, use_bias=False, name="conv_gn")(d)
    e = GroupNorm(groups=2, name="gn")(e)  # per-image statistics: left alone
    return keras.Model(x, e)


def test_folded_weights_by_hand_and_the_pairs_left_alone():
    model = _small_model()
    _randomise_norms(model)
    x = np.random.default_rng(1).normal(0, 1, (2, 8, 8, 3)).astype(np.float32)
    before = model(x).numpy()
    bn = model.get_layer("bn_a")
    kernel = model.get_layer("conv_a").kernel.numpy()
    gamma, beta = bn.gamma.numpy(), bn.beta.numpy()
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    dw_kernel, dw_bias = (v.numpy() for v in model.get_layer("dw_b").weights)
    affine = model.get_layer("affine_b")
    scale, shift = affine.scale.numpy(), affine.bias.numpy()
    pairs = fold_norms(model)
    assert [(c.name, n.name) for c, n in pairs] == [("conv_a", "bn_a"), ("dw_b", "affine_b")]
    # conv_a's output channel 2: kernel x gamma / sqrt(var + 1e-3); bias beta - mean x that.
    s = gamma[2] / np.sqrt(var[2] + 1e-3)
    np.testing.assert_allclose(model.get_layer("conv_a").kernel.numpy()[..., 2],
                               kernel[..., 2] * s, rtol=1e-6)
    np.testing.assert_allclose(bn.beta.numpy()[2], beta[2] - mean[2] * s, rtol=1e-5)
    # The depthwise conv's output channel 2 x 1 + 1 = 3 is input 1's second multiplier.
    np.testing.assert_allclose(model.get_layer("dw_b").kernel.numpy()[:, :, 1, 1],
                               dw_kernel[:, :, 1, 1] * scale[3], rtol=1e-6)
    np.testing.assert_allclose(affine.bias.numpy()[3], dw_bias[3] * scale[3] + shift[3],
                               rtol=1e-5)
    assert not np.any(model.get_layer("dw_b").bias.numpy())
    np.testing.assert_allclose(model(x).numpy(), before, rtol=1e-5, atol=1e-5)
    assert fold_norms(model) == []  # nothing more to fold
    with pytest.raises(ValueError, match="folded into its conv"):
        model(x, training=True)


@pytest.mark.parametrize("row,size", [("blazeface_fpn_ssh", 96), ("faceboxes", 128),
                                      ("retinanet_r50_fpn_1x", 128)])
def test_zoo_rows_fold_every_norm_with_the_same_outputs(row, size):
    kwargs = {"image_size": size} if "face" in row else {"num_classes": 3}
    model = models.get(row, **kwargs)
    _randomise_norms(model)
    x = np.random.default_rng(0).normal(0, 1, (1, size, size, 3)).astype(np.float32)
    before = [np.asarray(t) for t in model.raw_outputs(x)]
    norms = [layer for layer in model.network.layers
             if isinstance(layer, (BatchNorm, AffineChannel))]
    pairs = fold_norms(model)
    assert len(pairs) == len(norms) > 20
    for ours, theirs in zip(model.raw_outputs(x), before):
        err = np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max()
        assert err < 1e-5, (row, err)


def _executed_ops(fn, x):
    """Op types of the graphs TensorFlow runs for fn(x) after its optimisations (grappler's
    remapper, oneDNN's rewrites), by running its frozen graph with partition graphs."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    frozen = convert_variables_to_constants_v2(
        tf.function(fn, input_signature=[tf.TensorSpec(x.shape)]).get_concrete_function())
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
        inputs = graph.get_tensor_by_name(frozen.inputs[0].name)
        outputs = [graph.get_tensor_by_name(t.name) for t in frozen.outputs]
        with tf.compat.v1.Session(graph=graph) as session:
            metadata = tf.compat.v1.RunMetadata()
            session.run(outputs, {inputs: x},
                        options=tf.compat.v1.RunOptions(output_partition_graphs=True),
                        run_metadata=metadata)
    return collections.Counter(node.op for g in metadata.partition_graphs for node in g.node)


def test_folded_blazeface_runs_fused_depthwise_convs_and_no_norm_ops():
    model = models.get("blazeface", image_size=64)
    _randomise_norms(model)
    x = np.zeros((1, 64, 64, 3), np.float32)
    before = _executed_ops(model.raw_outputs, x)
    fold_norms(model)
    after = _executed_ops(model.raw_outputs, x)
    norm_ops = [op for op in before if "BatchNorm" in op]
    assert norm_ops and sum(before[op] for op in norm_ops) >= 17  # BlazeNet's depthwise BNs
    assert not [op for op in after if "BatchNorm" in op], after
    fused_dw = [op for op in after if "Fused" in op and "Depthwise" in op]
    assert fused_dw and sum(after[op] for op in fused_dw) == 17, after


def _tame_head(model, x):
    """Scales the head's kernels so that random weights give moderate logits (std 2) and
    deltas (std 0.5): distinct boxes near their priors and unsaturated scores, so that the
    comparison below sees real detections, not clipped copies of the image box at 1.0."""
    logits, deltas = (t.numpy() for t in model.raw_outputs(x))
    for v in model.weights:
        if v.path.startswith("head/"):
            target, out = (2.0, logits) if "/class" in v.path else (0.5, deltas)
            v.assign(v.numpy() * (target / out.std()) if v.path.endswith("kernel")
                     else np.zeros(v.shape, np.float32))


def test_export_with_folded_norms_serves_the_same_detections(tmp_path):
    model = models.get("blazeface", num_classes=1, image_size=64)
    _randomise_norms(model)
    image = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), np.uint8)
    _tame_head(model, image.astype(np.float32) - np.float32([104.0, 117.0, 123.0]))  # SSD means
    kwargs = dict(transform=data.ssd_transforms(False, 64), canvas=64, size_divisor=1)
    plain = export_saved_model(model, str(tmp_path / "plain"), [1], **kwargs)
    folded = export_saved_model(model, str(tmp_path / "folded"), [1], fold_norms=True,
                                **kwargs)
    assert any(layer.folded for layer in model.network.layers if isinstance(layer, BatchNorm))
    outs = [tf.saved_model.load(p).signatures["serving_default"](images=tf.constant(image))
            for p in (plain, folded)]
    n = int(outs[0]["num_detections"][0])
    assert n == int(outs[1]["num_detections"][0]) > 0
    # NMS may order near-tied scores differently, so each folded detection is matched to
    # its own plain one by box, one to one.
    boxes = [o["detection_boxes"][0, :n].numpy() for o in outs]
    scores = [o["detection_scores"][0, :n].numpy() for o in outs]
    nearest = np.abs(boxes[1][:, None] - boxes[0][None]).max(-1).argmin(1)
    assert len(set(nearest.tolist())) == n
    np.testing.assert_allclose(boxes[1], boxes[0][nearest], atol=1e-4)
    # Scores are probabilities: an absolute tolerance (a 1e-5 logit change is 1.6e-4
    # relative on a 0.035 score).
    np.testing.assert_allclose(scores[1], scores[0][nearest], atol=5e-5)
