"""Folds inference-time norms into the convolutions before them, for export and inference.

    pairs = fold_norms(model)        # in place; the model is for inference from then on

A BatchNorm in inference (y = gamma (x - mean) / sqrt(var + eps) + beta) or an AffineChannel
(y = scale x + bias) right after a Conv2D or DepthwiseConv2D is a per-output-channel scale s
and shift t: the conv's kernel is multiplied by s (its bias, if any, moved into t) and the
norm becomes a bias add of t. TensorFlow's graph optimiser (grappler's remapper, oneDNN on
CPU) then fuses conv + bias + ReLU into one `_FusedConv2D` / `_FusedDepthwiseConv2dNative`
kernel instead of a conv and one or two element-wise passes over its output.

Folded: a norm whose one input is a linear conv's output that feeds nothing else, in a
functional Keras model (nested functional models and a detector's `network` included).
Left as they are: GroupNorm (statistics per image), Keras' own BatchNormalization (sync BN),
norms after deformable convs or activations, shared layers, convs whose output is also a
model output. The weights change in place and a folded BatchNorm refuses to train:
scripts/export.py folds the model it has just restored; `export_saved_model(...,
fold_norms=True)` folds the model it is given.
"""
import keras
import numpy as np

from tfdet.layers.norm import AffineChannel, BatchNorm

_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _scale_shift(norm):
    """(s, t) float64 [C] with norm(x) = s x + t at inference."""
    if isinstance(norm, AffineChannel):
        return (np.asarray(norm.scale, np.float64), np.asarray(norm.bias, np.float64))
    channels = int(norm.moving_mean.shape[0])
    gamma = np.asarray(norm.gamma, np.float64) if norm.scale else np.ones(channels)
    beta = np.asarray(norm.beta, np.float64) if norm.center else np.zeros(channels)
    s = gamma / np.sqrt(np.asarray(norm.moving_variance, np.float64) + norm.epsilon)
    return s, beta - np.asarray(norm.moving_mean, np.float64) * s


def _operations(model):
    """Every operation of a functional model (layers and ops such as `a + b` on its
    tensors), nested functional models' included."""
    for op in model.operations:
        if isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth"):
            yield from _operations(op)
        yield op


def _foldable_pairs(model):
    """[(conv, norm)] of the model's graph (see the module docstring)."""
    layers = list(_operations(model))
    consumers = {}  # id(tensor) -> how many operation calls (or model outputs) read it
    models = [model] + [op for op in layers if isinstance(op, keras.Model)]
    reads = [t for m in models for t in (getattr(m, "outputs", None) or [])]
    for layer in layers:
        for node in layer._inbound_nodes:
            reads += node.arguments.keras_tensors
    for tensor in reads:
        consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    pairs = []
    for norm in layers:
        usable = isinstance(norm, AffineChannel) or (
            isinstance(norm, BatchNorm) and norm.center and not norm.synchronized
            and not norm.renorm)
        if not usable or len(norm._inbound_nodes) != 1 or norm.folded:
            continue
        inputs = norm._inbound_nodes[0].arguments.keras_tensors
        if len(inputs) != 1:
            continue
        conv = inputs[0]._keras_history.operation
        if (isinstance(conv, _CONVS) and len(conv._inbound_nodes) == 1
                and conv.activation in (None, keras.activations.linear)
                and consumers.get(id(inputs[0])) == 1):
            pairs.append((conv, norm))
    return pairs


def fold_norms(model):
    """Folds every foldable norm of `model` (a tfdet detector or any Keras model: each
    functional model in it, e.g. a detector's network, an R-CNN's backbone and its res5 box
    head) into its conv, in place; returns the folded (conv, norm) pairs. A second call
    folds nothing more."""
    roots = [layer for layer in model._flatten_layers(include_self=True, recursive=True)
             if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth")]
    # a nested functional model's operations are walked by its parent's _operations
    nested = {id(op) for root in roots for op in _operations(root) if op is not root}
    roots = [root for root in roots if id(root) not in nested]
    pairs = [pair for root in roots for pair in _foldable_pairs(root)]
    for conv, norm in pairs:
        s, t = _scale_shift(norm)
        kernel = np.asarray(conv.kernel, np.float64)
        if isinstance(conv, keras.layers.DepthwiseConv2D):  # [kh, kw, in, multiplier]
            kernel = kernel * s.reshape(kernel.shape[2], kernel.shape[3])
        else:  # [kh, kw, in, out]
            kernel = kernel * s
        if conv.use_bias:
            t = t + np.asarray(conv.bias, np.float64) * s
            conv.bias.assign(np.zeros(conv.bias.shape, np.float32))
        conv.kernel.assign(kernel.astype(np.float32))
        norm.fold(t.astype(np.float32))
    return pairs
