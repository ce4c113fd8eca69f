"""Reading PaddlePaddle weight files without PaddlePaddle and without trusting them.

A ppdet 2.x `.pdparams` file is a pickle of `{name: numpy array}` (`paddle.save(state_dict)`),
sometimes with a `StructuredToParameterName@@` dict of names. A pickle can run any code when
loaded, so `read_pdparams` unpickles with an allow-list: numpy's array reconstruction, dtypes
and scalars, and plain containers; any other global is refused with `WeightFileError` naming
the file and the global, before anything is built.
"""
import importlib
import io
import os
import pickle

import numpy as np

STRUCTURED_NAMES = "StructuredToParameterName@@"

# (module, name) pairs a weight pickle may reference; numpy 1.x and 2.x spellings.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}


def _resolve(module, name):
    """The allowed global, under numpy 1.x's or 2.x's module name."""
    for candidate in (module, module.replace("numpy.core", "numpy._core"),
                      module.replace("numpy._core", "numpy.core")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"{module}.{name}")


class WeightFileError(ValueError):
    """A weight file that cannot be read as weights (names the file and what is wrong)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise WeightFileError(
                f"{self.path}: refuses to load {module}.{name}: a weight file holds only numpy "
                "arrays and plain containers (this file may run code when unpickled)")
        return _resolve(module, name)

    def persistent_load(self, pid):
        raise WeightFileError(f"{self.path}: persistent ids are not weights (is this a "
                              "PyTorch file?)")


def read_pdparams(path):
    """{name: numpy array} from a `.pdparams` pickle, loaded with an allow-list of globals.

    Raises WeightFileError (naming the file) for a missing file, a file that is not a pickle,
    a pickle that references anything but numpy arrays / dtypes and containers, or one whose
    top level is not a dict of arrays. The `StructuredToParameterName@@` entry is dropped.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise WeightFileError(f"{path}: cannot read: {e.strerror or e}") from None
    if data[:2] == b"PK":
        raise WeightFileError(f"{path}: a zip archive (PyTorch / Keras?), not a .pdparams pickle")
    try:
        state = _RestrictedUnpickler(io.BytesIO(data), path).load()
    except WeightFileError:
        raise
    except Exception as e:  # any malformed pickle
        raise WeightFileError(f"{path}: not a .pdparams pickle ({type(e).__name__}: {e})") \
            from None
    if not isinstance(state, dict):
        raise WeightFileError(f"{path}: top level is {type(state).__name__}, expected a dict "
                              "of name -> array")
    state = dict(state)
    state.pop(STRUCTURED_NAMES, None)
    out = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise WeightFileError(f"{path}: key {name!r} is not a tensor name")
        if not isinstance(value, np.ndarray):
            raise WeightFileError(f"{path}: {name} is {type(value).__name__}, not an array")
        out[name] = value
    return out


def write_pdparams(state, path):
    """Writes {name: array} as ppdet does (pickle protocol 4 of numpy arrays); for fixtures
    and tests."""
    with open(path, "wb") as f:
        pickle.dump({k: np.asarray(v) for k, v in state.items()}, f, protocol=4)
