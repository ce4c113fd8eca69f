"""Export traces the detector once (weights frozen) or once per signature (variables), and
saves nothing else of the Keras model."""
import numpy as np
import pytest
import tensorflow as tf

from tfdet import data, models
from tfdet.export import export_saved_model


def _export(tmp_path, **kwargs):
    model = models.get("blazeface", num_classes=2, image_size=64)
    traces = []
    call = model.call

    def counted(*args, **kw):
        traces.append(tf.executing_eagerly())
        return call(*args, **kw)

    model.call = counted
    path = export_saved_model(model, str(tmp_path / "1"), [1, 2], ["a", "b"],
                              transform=data.ssd_transforms(False, 64), canvas=64,
                              size_divisor=32, **kwargs)
    return model, traces, tf.saved_model.load(path)


def _library_ops(function):
    graph = function.graph.as_graph_def()
    return {n.op for f in graph.library.function for n in f.node_def} | {
        n.op for n in graph.node}


@pytest.mark.parametrize("freeze", [True, False])
def test_export_traces_the_detector_once_per_signature_or_once_frozen(tmp_path, freeze):
    model, traces, loaded = _export(tmp_path, freeze_weights=freeze)
    # Frozen (the default): one trace, whose weights become constants and which both
    # signatures call. Variables: serving_default and serving_encoded each traced once (graph
    # mode). Never a trace for Keras' own default signature or for the saving context.
    assert traces == ([False] if freeze else [False, False])
    assert sorted(loaded.signatures) == ["serving_default", "serving_encoded"]
    assert not hasattr(loaded, "model")
    image = np.random.default_rng(0).integers(0, 255, [1, 50, 70, 3], np.uint8)
    out = loaded.signatures["serving_default"](images=tf.constant(image))
    assert out["detection_boxes"].shape[0] == 1
    ops = _library_ops(loaded.signatures["serving_encoded"])
    if freeze:
        # No variable is read: the convs take constant filters, which oneDNN reorders once.
        assert not hasattr(loaded, "detector_variables")
        assert not ops & {"ReadVariableOp", "VarHandleOp", "ResourceGather"}, ops
    else:  # the variables are saved: the restored graph reads the trained values
        assert len(loaded.detector_variables) == len(model.weights)
        assert "ReadVariableOp" in ops


def test_frozen_and_variable_exports_give_the_same_detections(tmp_path):
    model = models.get("blazeface", num_classes=2, image_size=64)
    image = tf.constant(np.random.default_rng(1).integers(0, 255, [2, 64, 48, 3], np.uint8))
    outs = []
    for freeze in (True, False):
        path = export_saved_model(model, str(tmp_path / str(freeze)), [1, 2], ["a", "b"],
                                  transform=data.ssd_transforms(False, 64), canvas=64,
                                  size_divisor=32, freeze_weights=freeze)
        outs.append(tf.saved_model.load(path).signatures["serving_default"](images=image))
    frozen, variables = outs
    assert float(variables["num_detections"][0]) > 0
    for key in variables:
        np.testing.assert_allclose(frozen[key].numpy(), variables[key].numpy(), atol=1e-5,
                                   err_msg=key)


def test_untrained_biases_fill_only_the_all_zero_bias_vectors():
    from tfdet.export.saved_model import untrained_biases
    model = models.get("blazeface", num_classes=2, image_size=64)
    before = {id(w): np.asarray(w.numpy()).copy() for w in model.weights}
    zero = [w for w in model.weights if len(w.shape) == 1 and w.name in ("bias", "beta")
            and not before[id(w)].any()]
    assert zero  # a fresh detector's conv biases and norm betas start at zero
    assert untrained_biases(model) == len(zero)
    for w in model.weights:
        now = np.asarray(w.numpy())
        if any(w is z for z in zero):
            assert now.any() and np.abs(now).max() < 1e-4, w.path
        else:  # kernels, gammas, statistics and any non-zero bias are left alone
            np.testing.assert_array_equal(now, before[id(w)], err_msg=w.path)
