"""Seeded random weights for a PaddleDetection state dict: pure numpy, shared by
scripts/make_paddle_fixtures.py (in the paddle venv) and the parity tests, so fixtures store a
seed and the names / shapes instead of tens of millions of floats.

Each tensor is drawn from its own generator, seeded by (seed, crc32(name)), so the values do not
depend on dict order. Scales keep activations of order one through a deep network in eval mode:
conv / linear weights N(0, 1 / fan_in), norm scales U(0.4, 0.8), biases / means N(0, 0.05),
variances U(0.5, 1.5). `overrides` maps a name, or an fnmatch pattern such as
"backbone.*._batch_norm.weight", to ("normal", mean, std) or ("const", value): e.g. classifier
biases that put detections above the score threshold, or norm scales that keep a thin
network's activations from fading (an exact name wins over patterns, then the first pattern).
"""
import fnmatch
import zlib

import numpy as np


def seeded_tensor(name, shape, seed, override=None):
    """The float32 array of one tensor (see the module docstring)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    shape = tuple(int(s) for s in shape)
    if override is not None:
        kind = override[0]
        if kind == "const":
            return np.full(shape, override[1], np.float32)
        if kind == "normal":
            return rng.normal(override[1], override[2], shape).astype(np.float32)
        raise ValueError(f"unknown override {override!r} for {name}")
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "_variance":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if leaf in ("_mean", "bias"):
        return rng.normal(0.0, 0.05, shape).astype(np.float32)
    if len(shape) == 1:  # norm scale
        return rng.uniform(0.4, 0.8, shape).astype(np.float32)
    if len(shape) == 2:  # paddle Linear [in, out]
        fan_in = shape[0]
    else:  # conv [out, in / groups, kh, kw]; transposed conv [in, out, kh, kw]
        fan_in = int(np.prod(shape[1:]))
    return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32)


def seeded_state(shapes, seed, overrides=None):
    """{name: array} for an ordered {name: shape}."""
    overrides = overrides or {}
    patterns = [k for k in overrides if any(c in k for c in "*?[")]

    def recipe(name):
        if name in overrides:
            return overrides[name]
        return next((overrides[p] for p in patterns if fnmatch.fnmatchcase(name, p)), None)
    return {name: seeded_tensor(name, shape, seed, recipe(name))
            for name, shape in shapes.items()}
