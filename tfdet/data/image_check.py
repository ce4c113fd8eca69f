"""Cheap checks of an image file before training meets it: format, size, truncation.

Reads the header and the last bytes only, so a 100k-image data set is checked in seconds.
"""
import os
import struct


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


def probe_image(path):
    """Returns (height, width) of a JPEG / PNG / GIF / BMP file, or raises InvalidImage.

    Raises for: a missing or empty file, an unknown format, a JPEG without its end-of-image
    marker or a PNG without IEND (truncated files), and zero sizes.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        raise InvalidImage("image file not found") from None
    if size == 0:
        raise InvalidImage("empty (zero-byte) file")
    with open(path, "rb") as f:
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
    return int(height), int(width)
