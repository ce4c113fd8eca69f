"""Checks of an image file before training meets it.

`probe_image` reads the header and the last bytes only (format, size, truncation, a pixel limit
checked before anything is decoded). `verify_image` then decodes the whole file once with the
decoder the input pipeline uses and refuses files that fail or that libjpeg reports as corrupt
("Corrupt JPEG data": a JPEG cut short with its end marker restored, or with damaged data,
decodes to grey or garbage without an error). `check_image` is `verify_image` cached by path,
size and modification time (in `$TFDET_CACHE`, default `~/.cache/tfdet`), so a second run over
the same files is fast.

The pixel limit (width x height) defaults to 100 MP, above the largest real photos; set
`TFDET_MAX_IMAGE_PIXELS` or pass `max_pixels` to change it.
"""
import json
import os
import struct
import tempfile
import threading

DEFAULT_MAX_PIXELS = 100_000_000
# libjpeg's warnings about damaged data (TF decodes such files anyway, filling with grey).
_CORRUPT_MARKERS = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid JPEG file",
                    "Bogus marker", "Unsupported marker")


def max_pixels_default():
    """The pixel limit in force: TFDET_MAX_IMAGE_PIXELS, else DEFAULT_MAX_PIXELS."""
    value = os.environ.get("TFDET_MAX_IMAGE_PIXELS")
    return int(value) if value else DEFAULT_MAX_PIXELS


class InvalidImage(ValueError):
    """An image file that cannot be used; the message is the reason."""


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(f):
    f.seek(2)
    while True:
        byte = f.read(1)
        while byte and byte != b"\xff":
            byte = f.read(1)
        while byte == b"\xff":
            byte = f.read(1)
        if not byte:
            raise InvalidImage("truncated JPEG (no frame header)")
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            raise InvalidImage("truncated JPEG (cut inside a header)")
        (length,) = struct.unpack(">H", length_bytes)
        if marker in _JPEG_SOF:
            data = f.read(5)
            if len(data) < 5:
                raise InvalidImage("truncated JPEG (cut inside the frame header)")
            _, height, width = struct.unpack(">BHH", data)
            return height, width
        f.seek(length - 2, os.SEEK_CUR)


def probe_image(path, max_pixels=None):
    """Returns (height, width) of a JPEG / PNG / GIF / BMP file, or raises InvalidImage.

    Raises for: a missing or empty file, an unknown format, a JPEG without its end-of-image
    marker or a PNG without IEND (truncated files), zero sizes, and more pixels than
    max_pixels (default `max_pixels_default()`), read from the header: nothing is decoded.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        raise InvalidImage("image file not found") from None
    if not os.path.isfile(path):
        raise InvalidImage("not a file")
    if size == 0:
        raise InvalidImage("empty (zero-byte) file")
    with open(path, "rb") as f:
        return _probe(f, size, max_pixels)


def probe_bytes(data, max_pixels=None):
    """probe_image for an encoded image held in memory (e.g. a TFRecord's image/encoded)."""
    import io

    if not data:
        raise InvalidImage("empty (zero-byte) image data")
    return _probe(io.BytesIO(data), len(data), max_pixels)


def _probe(f, size, max_pixels):
    """The header checks of probe_image on an open binary file of `size` bytes."""
    head = f.read(32)
    f.seek(max(0, size - 1024))
    tail = f.read()
    if head[:3] == b"\xff\xd8\xff":
        if b"\xff\xd9" not in tail:
            raise InvalidImage("truncated JPEG (no end-of-image marker)")
        height, width = _jpeg_size(f)
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        if len(head) < 24 or b"IEND" not in tail:
            raise InvalidImage("truncated PNG (no IEND chunk)")
        width, height = struct.unpack(">II", head[16:24])
    elif head[:4] == b"GIF8" and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
    elif head[:2] == b"BM" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        height = abs(height)
    else:
        raise InvalidImage("not an image (unknown format: expected JPEG, PNG, GIF or BMP)")
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image has size {width}x{height}")
    limit = max_pixels_default() if max_pixels is None else max_pixels
    if width * height > limit:
        raise InvalidImage(f"image of {width}x{height} = {width * height / 1e6:.1f} MP is over "
                           f"the {limit / 1e6:g} MP limit (TFDET_MAX_IMAGE_PIXELS)")
    return int(height), int(width)


_STDERR_LOCK = threading.Lock()


def _decode_capturing_stderr(data):
    """tf.io.decode_image on bytes, with what the C++ decoders print to stderr captured."""
    import tensorflow as tf

    with _STDERR_LOCK, tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            shape = tuple(int(d) for d in image.shape)
            error = None
        except Exception as err:  # noqa: BLE001 - any decoder failure makes the file unusable
            shape, error = None, err
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    return shape, error, text


def verify_image(path, max_pixels=None):
    """probe_image, then one full decode with TensorFlow's decoder (what the pipeline uses).

    Returns (height, width); raises InvalidImage for a file that does not decode, decodes to
    another size than its header says, or that libjpeg reports as corrupt."""
    probe_image(path, max_pixels)
    with open(path, "rb") as f:
        return verify_bytes(f.read(), max_pixels)


def verify_bytes(data, max_pixels=None):
    """verify_image for encoded bytes in memory."""
    height, width = probe_bytes(data, max_pixels)
    shape, error, printed = _decode_capturing_stderr(data)
    if error is not None:
        message = getattr(error, "message", str(error)).strip().splitlines()[0]
        message = message.split("}} ")[-1].replace(" [Op:DecodeImage]", "")
        raise InvalidImage(f"does not decode ({message})")
    corrupt = [line for line in printed.splitlines() if line.startswith(_CORRUPT_MARKERS)]
    if corrupt:
        raise InvalidImage(f"corrupt image data ({corrupt[0].strip()})")
    other = "".join(line + "\n" for line in printed.splitlines()
                    if line and not line.startswith(_CORRUPT_MARKERS))
    if other:  # not ours to hide
        os.write(2, other.encode())
    if shape[:2] != (height, width):
        raise InvalidImage(f"decodes to {shape[1]}x{shape[0]}, its header says "
                           f"{width}x{height}")
    return height, width


class ImageCheckCache:
    """verify_image results by real path, size and mtime, kept in one JSON file."""

    def __init__(self, path=None):
        if path is None:
            root = os.environ.get("TFDET_CACHE") or os.path.join(
                os.path.expanduser("~"), ".cache", "tfdet")
            path = os.path.join(root, "image_checks.json")
        self.path = path
        self._entries = None
        self._dirty = False

    def _load(self):
        if self._entries is None:
            try:
                with open(self.path, encoding="utf-8") as f:
                    self._entries = json.load(f)
                if not isinstance(self._entries, dict):
                    self._entries = {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def check(self, path, max_pixels=None):
        """verify_image(path), from the cache when the file is unchanged."""
        limit = max_pixels_default() if max_pixels is None else max_pixels
        try:
            stat = os.stat(path)
        except OSError:
            raise InvalidImage("image file not found") from None
        if not os.path.isfile(path):
            raise InvalidImage("not a file")
        return self._cached(os.path.realpath(path), [stat.st_size, stat.st_mtime_ns, limit],
                            lambda: verify_image(path, limit))

    def check_record(self, shard, index, data, max_pixels=None):
        """verify_bytes of record `index` of a TFRecord shard, cached by the shard's path,
        size and mtime."""
        limit = max_pixels_default() if max_pixels is None else max_pixels
        stat = os.stat(shard)
        return self._cached(f"{os.path.realpath(shard)}#{index}",
                            [stat.st_size, stat.st_mtime_ns, limit],
                            lambda: verify_bytes(data, limit))

    def _cached(self, key, stamp, verify):
        entry = self._load().get(key)
        if entry and entry[0] == stamp:
            if entry[1]:
                raise InvalidImage(entry[1])
            return tuple(entry[2])
        try:
            size = verify()
            self._entries[key] = [stamp, None, list(size)]
        except InvalidImage as err:
            self._entries[key] = [stamp, str(err), None]
            raise
        finally:
            self._dirty = True
        return size

    def save(self):
        """Writes the cache (atomically) if anything was checked."""
        if not self._dirty:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self._entries, f)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:  # a read-only cache folder only costs the next run's time
            pass


_CACHE = ImageCheckCache()


def check_image(path, max_pixels=None):
    """verify_image through the process-wide cache (see the module docstring)."""
    return _CACHE.check(path, max_pixels)


def check_record(shard, index, data, max_pixels=None):
    """ImageCheckCache.check_record through the process-wide cache."""
    return _CACHE.check_record(shard, index, data, max_pixels)


def save_check_cache():
    _CACHE.save()
