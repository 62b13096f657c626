"""Evidence photo checks, EXIF facts and derivatives: the one fieldsync module importing Pillow."""

from __future__ import annotations

import io
import math
import os
import re
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pillow_heif
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from fieldsync.errors import DomainError

# Registered once, here, so HEIC/HEIF opens wherever Pillow is used (only in this module).
# Auxiliary images (depth maps, embedded thumbnails) are never needed: don't decode them.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# Pillow's default, restated because validation depends on it: a short file is an error.
ImageFile.LOAD_TRUNCATED_IMAGES = False

BEIJING = timedelta(hours=8)
CHUNK_SIZE = 1 << 20

ContentType = Literal["image/jpeg", "image/png", "image/heic", "image/heif"]

# Pillow plugins allowed to parse each sniffed type: bytes that sniff as PNG never reach the
# JPEG decoder and so on. Pillow opens a JPEG with an MPF index (Ultra HDR, some cameras) as MPO.
_PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("JPEG",),
    "image/png": ("PNG",),
    "image/heic": ("HEIF",),
    "image/heif": ("HEIF",),
}
_DECODED_FORMATS: dict[str, frozenset[str]] = {
    "image/jpeg": frozenset({"JPEG", "MPO"}),
    "image/png": frozenset({"PNG"}),
    "image/heic": frozenset({"HEIF"}),
    "image/heif": frozenset({"HEIF"}),
}


# --- sniffing ---------------------------------------------------------------------------------

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis"})
_HEIF_STRUCTURAL_BRANDS = frozenset({b"mif1", b"mif2", b"msf1"})

SNIFF_BYTES = 64  # enough for an ftyp box with a dozen compatible brands


def sniff(head: bytes) -> ContentType | None:
    """The image type the first bytes prove, by magic numbers only; None for anything else.

    HEIF is accepted only with HEVC coding (brand `heic`/`heix`/...): a `mif1` container holding
    AV1 (AVIF) or anything else is not an allowed evidence type.
    """
    if head.startswith(_JPEG_MAGIC):
        return "image/jpeg"
    if head.startswith(_PNG_MAGIC):
        return "image/png"
    if len(head) >= 16 and head[4:8] == b"ftyp":
        box_size = int.from_bytes(head[0:4], "big")
        if box_size < 16:
            return None
        major = head[8:12]
        end = min(box_size, len(head))
        compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
        if major in _HEIC_BRANDS:
            return "image/heic"
        if major in _HEIF_STRUCTURAL_BRANDS and compatible & _HEIC_BRANDS:
            return "image/heif"
    return None


# --- markup ---------------------------------------------------------------------------------

# What a browser or an interpreter would take for a document or a program, wherever it sits in
# the file (image bytes in front do not make a polyglot safe): an opener, case-insensitive, that
# ends as a tag name or a PHP tag does, followed by a run of printable ASCII. `<?xml` is left out:
# XMP and plist packets start with it; an SVG document is caught by its `<svg`.
_MARKUP_OPENERS = (
    "?php", "?=", "!doctype", "html", "head", "body", "script", "style", "svg", "iframe",
    "object", "embed", "img", "meta", "link", "a", "form", "base",
)  # fmt: skip
_NAME_END = rb"[\t\n\f\r />]"  # 7 byte values end a tag name, or `<?php`
_PRINTABLE = rb"[\t\n\r\x20-\x7e]"  # 98 byte values

# Compressed pixels, HEVC and motion-photo video are near-random bytes, where an opener alone
# turns up every few hundred megabytes; a run of text after it almost never does. At one position
# random bytes match an opener's letter with probability 2/256 (7 bits of evidence), another byte
# 1/256 (8), a name end 7/256 (5.2), a printable byte 98/256 (1.385). Each opener needs a run long
# enough for _MARKUP_BITS in all: with 18 openers that is at most 18 * 2**-56 = 2.5e-16 per byte,
# one refused photo in 4 PB, some 800 million photos of 5 MB. A run that reaches the end of the
# file (a payload appended to a photo) needs _MARKUP_AT_END_BITS: so few positions can start one
# that this costs at most 18 * 2**-40 / (1 - 98/256) = 2.7e-11 per file, however large.
_MARKUP_BITS = 56
_MARKUP_AT_END_BITS = 40


def _markup_run(opener: str, bits: float) -> int:
    """Printable bytes an opener needs after it to carry `bits` of evidence in random bytes."""
    evidence = 8 + sum(7 if c.isalpha() else 8 for c in opener)  # "<" and the opener
    if opener[-1].isalpha():
        evidence += math.log2(256 / 7)  # the name end
    return max(0, math.ceil((bits - evidence) / math.log2(256 / 98)))


def _markup_pattern(bits: float, *, at_end: bool) -> re.Pattern[bytes]:
    alternatives = []
    for opener in _MARKUP_OPENERS:
        name_end = _NAME_END if opener[-1].isalpha() else b""
        run = _markup_run(opener, bits)
        quantity = b"{%d,}\\Z" % run if at_end else b"{%d}" % run
        alternatives.append(
            b"(" + re.escape(opener.encode()) + b")" + name_end + _PRINTABLE + quantity
        )
    return re.compile(b"<(?:" + b"|".join(alternatives) + b")", re.IGNORECASE)


_MARKUP = _markup_pattern(_MARKUP_BITS, at_end=False)
_MARKUP_AT_END = _markup_pattern(_MARKUP_AT_END_BITS, at_end=True)
# The longest match of _MARKUP: kept between reads, so no match straddles two unseen. A match at
# the end is shorter (a longer run would have matched _MARKUP), so it lies in the last window too.
_MARKUP_OVERLAP = max(len(o) + 2 + _markup_run(o, _MARKUP_BITS) for o in _MARKUP_OPENERS)


def find_markup(source: Path | str | BinaryIO, *, chunk: int = CHUNK_SIZE) -> str | None:
    """The opener (e.g. "<script") of the first markup or script in a file or stream, or None.

    Reads in `chunk`-sized pieces with a small overlap: memory is flat whatever the size.
    """
    if isinstance(source, str | Path):
        with open(source, "rb") as f:
            return find_markup(f, chunk=chunk)
    tail = b""
    while block := source.read(chunk):
        window = tail + block
        match = _MARKUP.search(window)
        if match:
            return _marker(match)
        tail = window[-_MARKUP_OVERLAP:]
    match = _MARKUP_AT_END.search(tail)
    return _marker(match) if match else None


def _marker(match: re.Match[bytes]) -> str:
    return "<" + match.group(match.lastindex or 0).decode("ascii").lower()


# --- facts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the bytes of a valid evidence photo say about themselves."""

    content_type: ContentType
    width: int  # as displayed, i.e. after the orientation is applied
    height: int
    orientation: int  # EXIF orientation the camera recorded, 1..8 (1 when absent)
    # EXIF DateTimeOriginal: the camera's local wall clock, no zone
    taken_at: datetime | None
    taken_at_local: str | None  # the same as a naive ISO 8601 string, "2008-10-22T16:28:39"
    taken_at_utc: datetime | None  # best effort: taken_at minus taken_at_offset, tz-aware UTC
    taken_at_offset: str | None  # the offset used, "+08:00"
    taken_at_offset_source: Literal["exif", "assumed"] | None  # OffsetTimeOriginal or the setting
    make: str | None
    model: str | None
    lat: float | None  # WGS-84 decimal degrees, north positive
    lon: float | None  # WGS-84 decimal degrees, east positive
    gcj02_lat: float | None  # GCJ-02 (火星坐标) for Chinese map tiles
    gcj02_lon: float | None


def inspect_image(
    path: Path | str,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    assume_utc_offset: timedelta = BEIJING,
) -> ImageFacts:
    """Validate a finished upload as an evidence photo and read its facts.

    Refuses, in this order: an empty file, one over `max_bytes`, one holding markup or script
    anywhere, one whose magic bytes are not JPEG/PNG/HEIC/HEIF, one declaring more than
    `max_pixels`, one whose image data is not all there and well formed. Bytes after a JPEG's
    end-of-image marker (motion-photo videos, vendor blocks) are part of the original and
    accepted. Metadata is best effort: a broken EXIF block means "no metadata", never a refusal.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DomainError("evidence.empty")
    if max_bytes is not None and size > max_bytes:
        raise DomainError("evidence.too_large", size=size, limit=max_bytes)
    marker = find_markup(path)
    if marker is not None:
        raise DomainError("evidence.markup_content", marker=marker)
    with open(path, "rb") as f:
        content_type = sniff(f.read(SNIFF_BYTES))
    if content_type is None:
        raise DomainError("evidence.not_an_image")
    if content_type in ("image/heic", "image/heif"):
        problem = _bmff_structure_problem(path)
        if problem is not None:
            raise DomainError("evidence.corrupt_image", reason=problem)

    with _open_image(path, content_type, max_pixels=max_pixels) as im:
        with _damaged_metadata_tolerated():  # first: a scaled decode changes im.size
            facts = _facts(im, content_type, assume_utc_offset)
        if im.format == "PNG":
            problem = _png_data_problem(path)
            if problem is not None:
                raise DomainError("evidence.corrupt_image", reason=problem)
        else:
            _decode_completely(im, path, max_pixels)
    return facts


def _decode_completely(im: Image.Image, path: Path, max_pixels: int) -> None:
    """Decode all the image data, refusing an image that does not decode to the end.

    A JPEG is decoded at 1/8 scale and in grey (libjpeg's DCT scaling): libjpeg still reads and
    entropy-decodes every block of every scan, so a cut-off or garbled stream fails as it would
    at full size, while 1/64 of the pixels are kept: memory hardly grows with the pixel count
    (except for progressive JPEGs, whose coefficients libjpeg buffers whole; cameras write
    baseline). libheif has no scaled decode: a HEIC is decoded at full size, into libheif's
    buffer only (Pillow's load() would copy it).
    """
    try:
        if im.format == "HEIF":
            heif = pillow_heif.open_heif(path)
            heif[heif.primary_index].load()
        else:
            if im.format in ("JPEG", "MPO"):
                im.draft("L", (1, 1))
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(im.size, max_pixels) from exc
    except Exception as exc:  # any decoder failure on untrusted bytes means "corrupt"
        raise DomainError("evidence.corrupt_image", reason=str(exc)[:200]) from exc


_MAX_TOP_LEVEL_BOXES = 10_000


def _bmff_structure_problem(path: Path) -> str | None:
    """Why a HEIC/HEIF file's top-level boxes do not tile it exactly, or None when they do.

    libheif decodes a cut-off file without complaint (the missing tiles come out flat), so
    truncation is caught here: every box must end within the file, and nothing may follow the last.
    Only box headers are read.
    """
    size = path.stat().st_size
    offset = 0
    kinds: list[bytes] = []
    with open(path, "rb") as f:
        while offset < size:
            if len(kinds) >= _MAX_TOP_LEVEL_BOXES:
                return "too many top-level boxes"
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                return f"{size - offset} stray bytes after the last box"
            box_size, kind = struct.unpack(">I4s", header[:8])
            header_size = 8
            if box_size == 1:  # 64-bit size follows the type
                if len(header) < 16:
                    return "cut-off box header"
                box_size = struct.unpack(">Q", header[8:16])[0]
                header_size = 16
            elif box_size == 0:  # extends to the end of the file
                box_size = size - offset
            if box_size < header_size:
                return f"impossible size {box_size} for box {kind!r} at {offset}"
            if offset + box_size > size:
                return (
                    f"box {kind!r} at {offset} runs {offset + box_size - size} bytes past the end"
                )
            kinds.append(kind)
            offset += box_size
    if not kinds or kinds[0] != b"ftyp" or b"meta" not in kinds:
        return "no ftyp and meta boxes"
    return None


# Samples per pixel by colour type: grey, RGB, palette index, grey and alpha, RGBA
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 interlacing: each pass's first column and row, and its steps across and down
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _png_data_size(ihdr: bytes) -> int:
    """Bytes a PNG's image data inflates to: each row of each pass is a filter byte and pixels."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr[:13])
    bits = depth * _PNG_CHANNELS[colour]
    size = 0
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        columns, rows = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if columns > 0 and rows > 0:
            size += rows * (1 + (columns * bits + 7) // 8)
    return size


def _png_data_problem(path: Path) -> str | None:
    """Why a PNG's chunks or image data are damaged or incomplete, or None when they are whole.

    Every chunk's CRC is checked up to IEND, and the IDAT stream must inflate to exactly the size
    the header declares (zlib checks its content with Adler-32). Read and inflated in CHUNK_SIZE
    pieces, never kept: memory stays flat whatever the pixel count, and a deflate bomb costs no
    more than its declared size. Pillow's verify() checks CRCs only; its decode keeps every pixel.
    """
    inflater = zlib.decompressobj()
    expected: int | None = None
    inflated = 0
    with open(path, "rb") as f:
        f.seek(len(_PNG_MAGIC))
        kind = b""
        while kind != b"IEND":
            header = f.read(8)
            if len(header) < 8:
                return "no IEND chunk"
            remaining, kind = struct.unpack(">I4s", header)
            crc = zlib.crc32(kind)
            while remaining:
                block = f.read(min(remaining, CHUNK_SIZE))
                if not block:
                    return f"chunk {kind!r} cut off"
                remaining -= len(block)
                crc = zlib.crc32(block, crc)
                if kind == b"IHDR" and expected is None:
                    expected = _png_data_size(block)
                elif kind == b"IDAT":
                    data = block
                    try:
                        while data:
                            inflated += len(inflater.decompress(data, CHUNK_SIZE))
                            if expected is None or inflated > expected:
                                return "more image data than the header declares"
                            data = inflater.unconsumed_tail
                    except zlib.error as exc:
                        return f"image data: {exc}"
            if f.read(4) != crc.to_bytes(4, "big"):
                return f"chunk {kind!r} fails its CRC"
    inflated += len(inflater.flush())
    if not inflater.eof or inflated != expected:
        return f"image data ends after {inflated} of {expected} bytes"
    return None


def _facts(im: Image.Image, content_type: ContentType, assume_utc_offset: timedelta) -> ImageFacts:
    exif = _exif(im)
    exif_ifd = _sub_ifd(exif, 0x8769)
    orientation = _orientation(im, exif)
    width, height = im.size
    # libheif hands out pixels already rotated (and resets the EXIF tag to 1); JPEG and PNG
    # pixels are stored as the sensor saw them.
    if im.format != "HEIF" and orientation in (5, 6, 7, 8):
        width, height = height, width

    taken_at = _exif_datetime(exif_ifd.get(0x9003) or exif.get(0x9003))
    offset_text, source = None, None
    taken_at_utc = None
    if taken_at is not None:
        offset = _exif_offset(exif_ifd.get(0x9011))
        source = "exif" if offset is not None else "assumed"
        offset = offset if offset is not None else assume_utc_offset
        offset_text = _format_offset(offset)
        taken_at_utc = taken_at.replace(tzinfo=timezone(offset)).astimezone(UTC)

    position = _gps_position(exif)
    lat, lon = position if position else (None, None)
    gcj = wgs84_to_gcj02(lat, lon) if position else None
    return ImageFacts(
        content_type=content_type,
        width=width,
        height=height,
        orientation=orientation,
        taken_at=taken_at,
        taken_at_local=taken_at.isoformat() if taken_at else None,
        taken_at_utc=taken_at_utc,
        taken_at_offset=offset_text,
        taken_at_offset_source=source,
        make=_text(exif.get(0x010F)),
        model=_text(exif.get(0x0110)),
        lat=lat,
        lon=lon,
        gcj02_lat=gcj[0] if gcj else None,
        gcj02_lon=gcj[1] if gcj else None,
    )


# --- Pillow guard rails -------------------------------------------------------------------


_WARNINGS_LOCK = threading.Lock()


@contextmanager
def _damaged_metadata_tolerated() -> Iterator[None]:
    """Let Pillow note damaged metadata (a UserWarning) and carry on, whatever the process's
    warning filters say (pytest turns warnings into errors): a broken EXIF block is "no metadata".

    `warnings.catch_warnings` is process-global and not thread-safe, so our uses take a lock, held
    only while headers and metadata are parsed, never while pixels are decoded.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(PIL|pillow_heif)(\.|$)")
        yield


def _bomb(size: tuple[int, int] | None, max_pixels: int) -> DomainError:
    pixels = size[0] * size[1] if size else None
    return DomainError("evidence.decompression_bomb", pixels=pixels, limit=max_pixels)


@contextmanager
def _open_image(path: Path, content_type: str, *, max_pixels: int) -> Iterator[Image.Image]:
    """Open with only the plugin the magic bytes chose, refusing over-large images before decoding.

    `max_pixels` is the limit, checked here on the declared size, before any pixel is decoded.
    Pillow's own global check inside `Image.open` is only ever raised to it, never lowered: so
    concurrent callers cannot weaken each other, and whatever Pillow would merely warn about
    (a DecompressionBombWarning) is above our limit and refused here, whatever the warning
    filters say.
    """
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with _damaged_metadata_tolerated():
            im = Image.open(path, formats=_PILLOW_FORMATS[content_type])
            _exif(im)  # parsed now, under the filter; Pillow keeps it on the image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # the warning arrives as an exception where filters say so (pytest's "error")
        raise _bomb(None, max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise DomainError("evidence.corrupt_image", reason="undecodable header") from exc
    except Exception as exc:  # any parser failure on untrusted bytes means "corrupt"
        raise DomainError("evidence.corrupt_image", reason=str(exc)[:200]) from exc
    with im:
        width, height = im.size
        if im.format not in _DECODED_FORMATS[content_type] or width < 1 or height < 1:
            raise DomainError("evidence.corrupt_image", reason=f"{im.format} {im.size}")
        if width * height > max_pixels:
            raise _bomb(im.size, max_pixels)
        yield im


# --- EXIF -----------------------------------------------------------------------------------


def _exif(im: Image.Image) -> Image.Exif | dict[int, Any]:
    try:
        if im.format == "PNG":
            # Only an eXIf chunk before the image data (where Pillow and most writers put it):
            # PngImageFile.getexif would decode every pixel to look for one after them.
            return Image.Image.getexif(im)
        return im.getexif()
    except Exception:  # a broken EXIF block is "no metadata" (also Pillow's warnings, if errors)
        return {}


def _sub_ifd(exif: Image.Exif | dict[int, Any], tag: int) -> dict[int, Any]:
    if not isinstance(exif, Image.Exif):
        return {}
    try:
        return dict(exif.get_ifd(tag))
    except Exception:
        return {}


def _orientation(im: Image.Image, exif: Image.Exif | dict[int, Any]) -> int:
    """The orientation the camera recorded (libheif applies it and resets EXIF's to 1)."""
    value = im.info.get("original_orientation") if im.format == "HEIF" else None
    return _valid_orientation(value if value is not None else exif.get(0x0112))


def _pending_orientation(im: Image.Image) -> int:
    """The orientation still to apply to the decoded pixels: libheif has applied HEIF's already."""
    return 1 if im.format == "HEIF" else _valid_orientation(_exif(im).get(0x0112))


def _valid_orientation(value: Any) -> int:
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


# EXIF orientation -> the transpose that makes the pixels upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


_EXIF_DATETIME = re.compile(r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _clean_str(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    return value.replace("\x00", " ").strip()


def _exif_datetime(value: Any) -> datetime | None:
    text = _clean_str(value)
    match = _EXIF_DATETIME.match(text) if text else None
    if not match:
        return None
    try:
        return datetime(*(int(part) for part in match.groups()))  # naive on purpose
    except ValueError:  # "0000:00:00 00:00:00" and other impossible dates
        return None


def _exif_offset(value: Any) -> timedelta | None:
    text = _clean_str(value)
    match = _EXIF_OFFSET.fullmatch(text) if text else None
    if not match:
        return None
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > timedelta(hours=14) or int(minutes) >= 60:
        return None
    return -offset if sign == "-" else offset


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _text(value: Any, *, limit: int = 128) -> str | None:
    text = _clean_str(value)
    if not text:
        return None
    return " ".join(text.split())[:limit] or None


def _dms(value: Any) -> float | None:
    parts = value if isinstance(value, tuple | list) else (value,)
    if value is None or not 1 <= len(parts) <= 3:
        return None
    total = 0.0
    for part, scale in zip(parts, (1, 60, 3600), strict=False):
        try:
            number = float(part)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        if not math.isfinite(number) or number < 0:
            return None
        total += number / scale
    return total


def _gps_position(exif: Image.Exif | dict[int, Any]) -> tuple[float, float] | None:
    gps = _sub_ifd(exif, 0x8825)
    lat, lon = _dms(gps.get(2)), _dms(gps.get(4))
    if lat is None or lon is None:
        return None
    if (_clean_str(gps.get(1)) or "N")[:1].upper() == "S":
        lat = -lat
    if (_clean_str(gps.get(3)) or "E")[:1].upper() == "W":
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    # 0,0 is what receivers write before a fix, not a place in the Gulf of Guinea
    if lat == 0 and lon == 0:
        return None
    return lat, lon


# --- GCJ-02 ---------------------------------------------------------------------------------

_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323


def _outside_china(lat: float, lon: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _delta_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _delta_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 → GCJ-02 by the published transform; identity outside mainland China's box."""
    if _outside_china(lat, lon):
        return lat, lon
    d_lat = _delta_lat(lon - 105.0, lat - 35.0)
    d_lon = _delta_lon(lon - 105.0, lat - 35.0)
    rad_lat = lat / 180.0 * math.pi
    magic = 1 - _KRASOVSKY_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / (
        (_KRASOVSKY_A * (1 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi
    )
    d_lon = (d_lon * 180.0) / (_KRASOVSKY_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return lat + d_lat, lon + d_lon


# --- derivatives ----------------------------------------------------------------------------


def make_thumbnail(
    src: Path | str, dst: Path | str, *, max_side: int = 320, max_pixels: int | None = None
) -> None:
    """An upright JPEG of at most `max_side` pixels a side, with no metadata at all."""
    _derive(Path(src), Path(dst), max_side=max_side, quality=80, max_pixels=max_pixels)


def make_display_copy(
    src: Path | str, dst: Path | str, *, max_side: int = 1600, max_pixels: int | None = None
) -> None:
    """An upright JPEG for screens, at most `max_side` a side, without EXIF, GPS, XMP, ICC or
    comments: nothing in it can say where or with what it was taken (colours converted to sRGB)."""
    _derive(Path(src), Path(dst), max_side=max_side, quality=85, max_pixels=max_pixels)


def _derive(src: Path, dst: Path, *, max_side: int, quality: int, max_pixels: int | None) -> None:
    if max_side < 1:
        raise ValueError("max_side must be positive")
    with open(src, "rb") as f:
        content_type = sniff(f.read(SNIFF_BYTES))
    if content_type is None:
        raise DomainError("evidence.not_an_image")
    limit = max_pixels if max_pixels is not None else (Image.MAX_IMAGE_PIXELS or 2**62)
    with _open_image(src, content_type, max_pixels=limit) as im:
        with _damaged_metadata_tolerated():
            orientation = _pending_orientation(im)
            icc = im.info.get("icc_profile")
        try:
            if im.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: never less than the target size.
                scale = max_side / max(im.size)
                if scale < 1:
                    target = tuple(max(1, math.ceil(side * scale)) for side in im.size)
                    im.draft(None, target)
            # Shrink first, then turn upright: the bounding box is square, so the order does not
            # change the result, and transposing the small image is cheaper.
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            upright = im.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else im
            out = _to_plain_rgb(upright, icc)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb(im.size, limit) from exc
        except Exception as exc:  # any decoder failure on untrusted bytes means "corrupt"
            raise DomainError("evidence.corrupt_image", reason=str(exc)[:200]) from exc
    _save_jpeg_atomically(out, dst, quality=quality)


_SRGB_PROFILE: ImageCms.ImageCmsProfile | None = None


def _to_plain_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB pixels in sRGB, with an empty `info` so nothing of the source's metadata is saved."""
    global _SRGB_PROFILE
    if icc and im.mode in ("RGB", "CMYK"):
        try:
            if _SRGB_PROFILE is None:
                _SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                im, source_profile, _SRGB_PROFILE, outputMode="RGB"
            )
            if converted is not None:
                im = converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # an unusable profile: keep the pixels as they are
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
    elif im.mode.startswith("I") or im.mode == "F":
        # 16-bit and float greyscale: scale to 8 bits instead of clipping at 255
        peak = 65535.0 if im.mode.startswith("I;16") else max(1.0, float(im.getextrema()[1]))
        out = im.convert("F").point(lambda v: v * 255.0 / peak).convert("L").convert("RGB")
    else:
        out = im.convert("RGB")
        if out is im:
            out = im.copy()
    out.info.clear()
    return out


def _save_jpeg_atomically(im: Image.Image, dst: Path, *, quality: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # No exif/icc_profile/xmp/comment arguments, and `info` is empty: Pillow writes
            # only the JFIF header and the pixels.
            im.save(f, "JPEG", quality=quality, optimize=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, dst)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
