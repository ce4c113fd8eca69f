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


# Paddle's VarType.Type codes of the tensor element types a weight file may hold.
_PADDLE_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16,
                  5: np.float32, 6: np.float64, 20: np.uint8, 21: np.int8}


def _varint(data, pos, where):
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WeightFileError(f"{where}: truncated tensor description")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _tensor_desc(desc, where):
    """(dtype code, dims) from a serialized TensorDesc: field 1 data_type, field 2 dims."""
    pos, dtype, dims = 0, None, []
    while pos < len(desc):
        key, pos = _varint(desc, pos, where)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(desc, pos, where)
            if field == 1:
                dtype = value
            elif field == 2:
                dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif wire == 2:
            length, pos = _varint(desc, pos, where)
            end = pos + length
            while field == 2 and pos < end:  # packed dims
                value, pos = _varint(desc, pos, where)
                dims.append(value - (1 << 64) if value >= 1 << 63 else value)
            pos = end
        else:
            raise WeightFileError(f"{where}: unexpected field in the tensor description")
    if dtype not in _PADDLE_DTYPES or any(d < 0 for d in dims):
        raise WeightFileError(f"{where}: unsupported tensor type {dtype} or shape {dims}")
    return dtype, dims


def parse_paddle_tensor(data, where):
    """One variable file of Paddle's static-graph format (save_vars / the static zoo's
    `.tar` members): uint32 version, uint64 LoD levels (each a uint64 byte count and its
    offsets), uint32 tensor version, int32 description size, the TensorDesc protobuf, then the
    raw little-endian elements. Returns the array; WeightFileError naming `where` otherwise."""
    import struct
    try:
        pos = 4
        (levels,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        for _ in range(levels):
            (size,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + size
        pos += 4
        (desc_size,) = struct.unpack_from("<i", data, pos)
        pos += 4
    except struct.error:
        raise WeightFileError(f"{where}: truncated Paddle tensor header") from None
    if desc_size < 0 or pos + desc_size > len(data):
        raise WeightFileError(f"{where}: bad tensor description size {desc_size}")
    dtype, dims = _tensor_desc(data[pos:pos + desc_size], where)
    pos += desc_size
    dt = np.dtype(_PADDLE_DTYPES[dtype]).newbyteorder("<")
    count = int(np.prod(dims)) if dims else 1
    if len(data) - pos != count * dt.itemsize:
        raise WeightFileError(f"{where}: {len(data) - pos} bytes of data for shape {dims} "
                              f"of {dt.name}")
    return np.frombuffer(data, dt, count, pos).reshape(dims).astype(dt.newbyteorder("="))


def read_static_params(path):
    """{variable name: array} from the static-graph zoo's weights: a folder with one file per
    variable (named as the static code names them, e.g. res2a_branch2a_weights) or the `.tar`
    the zoo links (read in place; members are never extracted to disk)."""
    import tarfile
    path = os.fspath(path)
    out = {}
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isfile(full) and not name.startswith("."):
                with open(full, "rb") as f:
                    out[name] = parse_paddle_tensor(f.read(), full)
        return out
    try:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if not member.isfile() or base.startswith("."):
                    continue
                data = tar.extractfile(member).read()
                out[base] = parse_paddle_tensor(data, f"{path}:{member.name}")
    except (tarfile.TarError, OSError) as e:
        raise WeightFileError(f"{path}: not a folder or tar of Paddle variables ({e})") from None
    return out
