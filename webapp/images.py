"""Images Roomsync stores in its database and serves: people's photos (`integration.models.UserPhoto`, from
Microsoft 365) and spaces' photos (`booking.models.SpacePhoto`, uploaded by an admin or from Microsoft 365).

Public API:
- `LABELS`: the image types Roomsync knows, content type → name (JPEG, PNG, WebP, GIF).
- `sniff(data)` → the content type the bytes themselves say (their magic number), or None. Never the file
  name or the type a browser sent along: those say whatever the uploader's machine believes.
- `dimensions(data, content_type)` → (width, height) from the image's header, or None when the header is
  missing, truncated or malformed (then no browser could show it either).
- `inspect(data, *, allowed, max_bytes, max_pixels)` → `Image(content_type, width, height)`; raises
  `ImageRejected` with a message for the person who sent it (empty, too large, not one of `allowed`, no
  readable header, too many pixels for a tablet to decode).
- `digest(data)` → 32 hex characters of its SHA-256: the ETag, and the version in a versioned URL.
- `image_response(data, content_type, etag, cache_control)` → the answer to a GET: 304 when If-None-Match holds
  `etag`, else the bytes; `nosniff`, so a browser never reads them as anything but their type.
- `versioned_cache_control(version, etag)`: a URL carrying the current version (`?v=<etag>`) never changes
  content, so it may be cached for a year (`immutable`); any other is revalidated every time (`no-cache`).

Header formats: PNG (IHDR, the first chunk), GIF (logical screen), JPEG (the first SOFn segment), WebP (the
RIFF container's VP8 / VP8L / VP8X chunk; Google's "WebP Container Specification" and RFC 9649).
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass

from flask import make_response, request

LABELS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/gif": "GIF"}
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"

_PNG = b"\x89PNG\r\n\x1a\n"
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG extension) and CC (DAC) share the range but do not.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM have no length


class ImageRejected(ValueError):
    """Not an image we store; `message` says why, for the person who sent it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Image:
    content_type: str
    width: int
    height: int


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(_PNG):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def dimensions(data: bytes, content_type: str) -> tuple[int, int] | None:
    try:
        size = _READERS[content_type](data)
    except (KeyError, IndexError, struct.error):
        return None
    if size is None or size[0] < 1 or size[1] < 1:
        return None
    return size


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _gif_size(data: bytes) -> tuple[int, int]:
    return struct.unpack("<HH", data[6:10])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _JPEG_STANDALONE:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before them
            return None
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        if length < 2:
            return None
        at += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit width and height
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2F, then width-1 and height-1 in 14 bits each
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: the canvas, 24 bits each, minus one
        if len(data) < 30:
            return None
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


_READERS = {"image/png": _png_size, "image/gif": _gif_size, "image/jpeg": _jpeg_size, "image/webp": _webp_size}


def _megabytes(size: int) -> str:
    """Rounded up to a tenth, so a file just over the limit never reads as the limit itself."""
    return f"{math.ceil(size / 100_000) / 10:.1f} MB".replace(".0 MB", " MB")


def inspect(data: bytes, *, allowed=tuple(LABELS), max_bytes: int, max_pixels: int) -> Image:
    if not data:
        raise ImageRejected("The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(f"The file is {_megabytes(len(data))}; at most {_megabytes(max_bytes)} is accepted. "
                            "Export the photo smaller (1,600 pixels wide is plenty for a screen).")
    names = " or ".join(", ".join(LABELS[t] for t in allowed).rsplit(", ", 1))
    content_type = sniff(data)
    if content_type not in allowed:
        raise ImageRejected(f"That file is not a {names} image (whatever its name says).")
    size = dimensions(data, content_type)
    if size is None:
        raise ImageRejected(f"That {LABELS[content_type]} file is damaged or incomplete: its size cannot be read.")
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected(f"The photo is {width:,} × {height:,} pixels; at most {max_pixels / 1e6:g} megapixels "
                            "is accepted (a tablet must be able to show it). Export it smaller.")
    return Image(content_type, width, height)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def versioned_cache_control(version: str | None, etag: str) -> str:
    return IMMUTABLE if version == etag else REVALIDATE


def image_response(data: bytes, content_type: str, etag: str, cache_control: str):
    if request.if_none_match.contains(etag):
        response = make_response("", 304)
    else:
        response = make_response(data)
        response.headers["Content-Type"] = content_type
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
