"""tus uploads through the test client: every kind of bad input gets a clear error, nothing
becomes evidence, and no file is left behind (PROTOCOL.md §4, issue 5 "Bad input")."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import sqlite3
import struct
import uuid
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PHOTOS, error_of
from sqlalchemy import func, select, text, update

from fieldsync.clock import utcnow
from fieldsync.evidence.models import Evidence, Upload

GPS_PHOTO = PHOTOS / "jpg_gps_DSCN0010.jpg"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Tus:
    """A hand-driven tus client over the Flask test client, for one user."""

    def __init__(self, api: Any, who: str) -> None:
        self.api = api
        self.who = who

    def headers(self, **extra: str) -> dict[str, str]:
        return self.api.headers(self.who, **{"Tus-Resumable": "1.0.0", **extra})

    def create(self, length: int, digest: str | None, **meta: str) -> Any:
        pairs = {"sha256": digest, **meta} if digest else meta
        metadata = ",".join(f"{k} {b64(v)}" for k, v in pairs.items())
        return self.api.client.post(
            "/api/v1/uploads",
            headers=self.headers(**{"Upload-Length": str(length), "Upload-Metadata": metadata}),
        )

    def patch(self, url: str, offset: int, data: bytes, checksum: str | None = None) -> Any:
        extra = {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        if checksum:
            extra["Upload-Checksum"] = checksum
        return self.api.client.patch(url, data=data, headers=self.headers(**extra))

    def head(self, url: str) -> Any:
        return self.api.client.head(url, headers=self.headers())

    def upload(self, data: bytes, *, digest: str | None = None, **meta: str) -> Any:
        """Create and send everything in one chunk; the last response."""
        created = self.create(len(data), digest or sha256(data), **meta)
        assert created.status_code == 201, created.get_json()
        return self.patch(created.headers["Location"], 0, data)


def data_dir(app: Any) -> Path:
    return Path(app.extensions["fieldsync"].config.data_dir)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.fixture(autouse=True)
def empty_data_dir(app: Any) -> None:
    """Start each test without upload or blob files, so that leftovers are this test's own."""
    for name in ("uploads", "blobs", "tmp"):
        shutil.rmtree(data_dir(app) / name, ignore_errors=True)


def evidence_count(app: Any) -> int:
    with app.extensions["fieldsync"].sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(Evidence)) or 0


def assert_nothing_left(app: Any) -> None:
    assert evidence_count(app) == 0
    assert files_under(data_dir(app) / "uploads") == []
    assert files_under(data_dir(app) / "blobs") == []


@pytest.fixture
def tus(api: Any, demo: Any) -> Tus:
    return Tus(api, "cg_wang")


# --- protocol ---------------------------------------------------------------------------------


def test_options_announce_the_server(api: Any) -> None:
    resp = api.client.options("/api/v1/uploads")
    assert resp.status_code == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert set(resp.headers["Tus-Extension"].split(",")) >= {
        "creation",
        "creation-with-upload",
        "checksum",
        "termination",
        "expiration",
    }
    assert int(resp.headers["Tus-Max-Size"]) == 50 << 20
    assert resp.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


def test_missing_tus_resumable_is_412(api: Any, demo: Any) -> None:
    resp = api.client.post(
        "/api/v1/uploads", headers=api.headers("cg_wang", **{"Upload-Length": "10"})
    )
    assert resp.status_code == 412
    assert error_of(resp) == "upload.version_unsupported"
    assert resp.headers["Tus-Version"] == "1.0.0"


def test_no_token_is_401_with_tus_header(api: Any, demo: Any) -> None:
    resp = api.client.post("/api/v1/uploads", headers={"Tus-Resumable": "1.0.0"})
    assert resp.status_code == 401
    assert resp.headers["Tus-Resumable"] == "1.0.0"


def test_sha256_metadata_is_required(tus: Tus) -> None:
    resp = tus.create(10, None, filename="x.jpg")
    assert resp.status_code == 400
    assert error_of(resp) == "upload.invalid_metadata"


def test_upload_in_chunks_with_checksums(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    created = tus.create(len(data), sha256(data), filename="DSCN0010.jpg")
    assert created.status_code == 201
    assert created.headers["Upload-Offset"] == "0"
    assert "Upload-Expires" in created.headers
    url = created.headers["Location"]
    offset = 0
    for algorithm in ("sha1", "sha256", "sha1"):
        chunk = data[offset : offset + 40_000]
        digest = base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()
        resp = tus.patch(url, offset, chunk, f"{algorithm} {digest}")
        assert resp.status_code == 204, resp.get_json()
        offset += len(chunk)
        assert int(resp.headers["Upload-Offset"]) == offset
        head = tus.head(url)
        assert head.status_code == 200
        assert head.headers["Upload-Offset"] == str(offset)
        assert head.headers["Upload-Length"] == str(len(data))
        assert head.headers["Cache-Control"] == "no-store"
        assert head.headers["Tus-Resumable"] == "1.0.0"
    resp = tus.patch(url, offset, data[offset:])
    assert resp.status_code == 204
    assert resp.headers["Upload-Offset"] == str(len(data))
    assert evidence_count(app) == 1
    assert files_under(data_dir(app) / "uploads") == []  # the part file went with the commit
    status = tus.api.client.get(url, headers=tus.headers()).get_json()
    assert status["state"] == "complete"


def test_creation_with_upload(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    metadata = f"sha256 {b64(sha256(data))}"
    resp = tus.api.client.post(
        "/api/v1/uploads",
        data=data,
        headers=tus.headers(
            **{
                "Upload-Length": str(len(data)),
                "Upload-Metadata": metadata,
                "Content-Type": "application/offset+octet-stream",
            }
        ),
    )
    assert resp.status_code == 201
    assert resp.headers["Upload-Offset"] == str(len(data))
    assert evidence_count(app) == 1


def test_termination_removes_the_upload_and_its_bytes(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    url = tus.create(len(data), sha256(data)).headers["Location"]
    assert tus.patch(url, 0, data[:1000]).status_code == 204
    assert len(files_under(data_dir(app) / "uploads")) == 1
    resp = tus.api.client.delete(url, headers=tus.headers())
    assert resp.status_code == 204
    assert tus.head(url).status_code == 404
    assert_nothing_left(app)


# --- bad input --------------------------------------------------------------------------------


def test_wrong_upload_offset_is_409(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    url = tus.create(len(data), sha256(data)).headers["Location"]
    assert tus.patch(url, 0, data[:1000]).status_code == 204
    for wrong in (0, 500, 2000):
        resp = tus.patch(url, wrong, data[wrong : wrong + 1000])
        assert resp.status_code == 409
        assert error_of(resp) == "upload.offset_mismatch"
        assert resp.get_json()["expected"] == 1000
    assert tus.head(url).headers["Upload-Offset"] == "1000"
    (part,) = files_under(data_dir(app) / "uploads")
    assert part.read_bytes() == data[:1000]
    assert evidence_count(app) == 0


def test_chunk_checksum_mismatch_is_460_and_the_chunk_is_dropped(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    url = tus.create(len(data), sha256(data)).headers["Location"]
    assert tus.patch(url, 0, data[:1000]).status_code == 204
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    resp = tus.patch(url, 1000, data[1000:2000], f"sha256 {wrong}")
    assert resp.status_code == 460
    assert error_of(resp) == "upload.checksum_mismatch"
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert tus.head(url).headers["Upload-Offset"] == "1000"
    (part,) = files_under(data_dir(app) / "uploads")
    assert part.read_bytes() == data[:1000]
    # an algorithm we do not offer is a 400, not a silent pass
    resp = tus.patch(url, 1000, data[1000:2000], "md5 AAAA")
    assert resp.status_code == 400
    assert error_of(resp) == "upload.checksum_unsupported"
    # the right chunk then goes through
    right = base64.b64encode(hashlib.sha256(data[1000:2000]).digest()).decode()
    assert tus.patch(url, 1000, data[1000:2000], f"sha256 {right}").status_code == 204
    assert tus.head(url).headers["Upload-Offset"] == "2000"


def test_final_hash_mismatch_never_becomes_evidence(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    declared = sha256(data + b"x")
    created = tus.create(len(data), declared)
    url = created.headers["Location"]
    resp = tus.patch(url, 0, data)
    assert resp.status_code == 422
    assert error_of(resp) == "upload.hash_mismatch"
    assert_nothing_left(app)
    # the refusal is remembered: the upload is gone for tus, its reason readable as JSON
    assert tus.head(url).status_code == 410
    status = tus.api.client.get(url, headers=tus.headers()).get_json()
    assert status["state"] == "failed"
    assert status["error"] == "upload.hash_mismatch"
    assert status["refusal"]["code"] == "upload.hash_mismatch"
    assert (
        "SHA-256" in status["refusal"]["message"] and "SHA-256" in status["refusal"]["message_zh"]
    )
    resp = tus.patch(url, len(data), b"")
    assert resp.status_code == 410
    assert error_of(resp) == "upload.failed"


MARKUP = {
    "html": b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
    "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
    "php": b"<?php system($_GET['c']); ?>",
}


@pytest.mark.parametrize("kind", sorted(MARKUP))
def test_markup_named_jpg_is_refused(app: Any, tus: Tus, kind: str) -> None:
    created = tus.create(len(MARKUP[kind]), sha256(MARKUP[kind]), filename="photo.jpg")
    resp = tus.patch(created.headers["Location"], 0, MARKUP[kind])
    assert resp.status_code == 422
    assert error_of(resp) == "evidence.markup_content"
    assert_nothing_left(app)
    # asked later, the refusal says the same, with what was found
    status = tus.api.client.get(created.headers["Location"], headers=tus.headers()).get_json()
    assert status["refusal"]["params"]["marker"] in status["refusal"]["message"]


def test_jpeg_with_an_html_tail_is_refused(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes() + b"\n<html><body onload=alert(1)></body></html>"
    resp = tus.upload(data, filename="DSCN0010.jpg")
    assert resp.status_code == 422
    assert error_of(resp) == "evidence.markup_content"
    assert_nothing_left(app)


def test_jpeg_with_a_motion_photo_trailer_is_accepted(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes() + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
    assert tus.upload(data).status_code == 204
    assert evidence_count(app) == 1


def test_zero_byte_file_is_refused_at_creation(app: Any, tus: Tus) -> None:
    resp = tus.create(0, sha256(b""), filename="empty.jpg")
    assert resp.status_code == 422
    assert error_of(resp) == "evidence.empty"
    assert_nothing_left(app)


def test_declared_length_of_10_gb_is_413(app: Any, tus: Tus) -> None:
    resp = tus.create(10 * 1024**3, sha256(b"big"), filename="big.jpg")
    assert resp.status_code == 413
    assert error_of(resp) == "evidence.too_large"
    assert_nothing_left(app)
    with app.extensions["fieldsync"].sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Upload)) == 0


def test_chunk_past_the_declared_length_is_413(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    url = tus.create(1000, sha256(data[:1000])).headers["Location"]
    resp = tus.patch(url, 0, data[:1500])
    assert resp.status_code == 413
    assert error_of(resp) == "upload.length_exceeded"
    assert tus.head(url).headers["Upload-Offset"] == "0"


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, all zeros: megapixels in a few kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused(app: Any, tus: Tus) -> None:
    data = png_bomb(30_000, 30_000)  # 900 megapixels in ~100 kB
    assert len(data) < 1 << 20
    resp = tus.upload(data, filename="bomb.png")
    assert resp.status_code == 422
    assert error_of(resp) == "evidence.decompression_bomb"
    assert_nothing_left(app)


def test_truncated_jpeg_is_refused(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    resp = tus.upload(data[: len(data) // 2], filename="half.jpg")
    assert resp.status_code == 422
    assert error_of(resp) == "evidence.corrupt_image"
    assert_nothing_left(app)


def test_garbage_is_not_an_image(app: Any, tus: Tus) -> None:
    resp = tus.upload(b"MZ\x90\x00" + bytes(4000), filename="photo.jpg")
    assert resp.status_code == 422
    assert error_of(resp) == "evidence.not_an_image"
    assert_nothing_left(app)


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("../../../../etc/passwd.jpg", "passwd.jpg"),
        ("..\\..\\windows\\evil.jpg", "evil.jpg"),
        ("..", None),
        ("/abs/../x/DSCN0010.jpg", "DSCN0010.jpg"),
    ],
)
def test_path_in_filename_is_reduced_to_a_bare_name(
    app: Any, tus: Tus, name: str, kept: str | None
) -> None:
    data = GPS_PHOTO.read_bytes()
    before = set(files_under(data_dir(app).parent))
    assert tus.upload(data, filename=name).status_code == 204
    with app.extensions["fieldsync"].sessionmaker() as s:
        evidence = s.scalars(select(Evidence).where(Evidence.sha256 == sha256(data))).one()
        assert evidence is not None
        assert evidence.filename == kept
    created = set(files_under(data_dir(app).parent)) - before
    # only the content-addressed blob, inside the blob directory, was written
    assert [p.name for p in created] == [sha256(data)]
    assert data_dir(app) / "blobs" in next(iter(created)).parents
    resp = tus.api.client.get(f"/api/v1/evidence/{sha256(data)}/original", headers=tus.headers())
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith(f'attachment; filename="{sha256(data)}.jpg"')
    assert ".." not in disposition and "/" not in disposition.split("filename*")[0]


def test_another_users_upload_is_404(app: Any, api: Any, demo: Any) -> None:
    data = GPS_PHOTO.read_bytes()
    mine = Tus(api, "cg_wang")
    url = mine.create(len(data), sha256(data)).headers["Location"]
    assert mine.patch(url, 0, data[:1000]).status_code == 204
    for who in ("cg_liu", "js_cg_xu"):
        other = Tus(api, who)
        assert other.head(url).status_code == 404
        resp = other.patch(url, 1000, data[1000:])
        assert resp.status_code == 404
        assert error_of(resp) == "upload.not_found"
        assert api.client.delete(url, headers=other.headers()).status_code == 404
    assert mine.head(url).headers["Upload-Offset"] == "1000"
    assert evidence_count(app) == 0


def test_unknown_upload_is_404(tus: Tus) -> None:
    resp = tus.patch(f"/api/v1/uploads/{uuid.uuid4()}", 0, b"x")
    assert resp.status_code == 404
    assert error_of(resp) == "upload.not_found"


def test_upload_after_expiry_is_410_and_the_job_removes_it(app: Any, tus: Tus) -> None:
    from fieldsync.jobs import expire_uploads

    data = GPS_PHOTO.read_bytes()
    url = tus.create(len(data), sha256(data)).headers["Location"]
    assert tus.patch(url, 0, data[:1000]).status_code == 204
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    services = app.extensions["fieldsync"]
    with services.sessionmaker() as s, s.begin():
        s.execute(
            update(Upload)
            .where(Upload.id == upload_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    resp = tus.patch(url, 1000, data[1000:])
    assert resp.status_code == 410
    assert error_of(resp) == "upload.expired"
    assert tus.head(url).status_code == 410
    assert len(files_under(data_dir(app) / "uploads")) == 1

    assert expire_uploads(services) == 1
    assert_nothing_left(app)
    with services.sessionmaker() as s:
        assert s.get(Upload, upload_id) is None
    assert tus.head(url).status_code == 404


def test_expiry_job_keeps_live_uploads_and_removes_stray_part_files(app: Any, tus: Tus) -> None:
    import os

    from fieldsync.jobs import expire_uploads

    data = GPS_PHOTO.read_bytes()
    url = tus.create(len(data), sha256(data)).headers["Location"]
    assert tus.patch(url, 0, data[:1000]).status_code == 204
    stray = data_dir(app) / "uploads" / f"{uuid.uuid4()}.part"
    stray.write_bytes(b"left by a crash")
    old = (utcnow() - timedelta(hours=2)).timestamp()
    os.utime(stray, (old, old))
    assert expire_uploads(app.extensions["fieldsync"]) == 0
    assert not stray.exists()
    assert tus.head(url).headers["Upload-Offset"] == "1000"


def test_a_whole_file_in_one_chunk_above_the_json_body_limit(app: Any, tus: Tus) -> None:
    """Stock tus clients (tuspy's default) send a whole file in one PATCH: a 12 MB motion
    photo goes through although JSON bodies stop at 4 MiB."""
    data = GPS_PHOTO.read_bytes()
    data += b"\x00\x00\x00\x18ftypmp42" + bytes(12 * (1 << 20) - len(data) - 12)
    assert len(data) > app.extensions["fieldsync"].config.max_body_bytes
    assert tus.upload(data).status_code == 204
    assert evidence_count(app) == 1


@pytest.mark.parametrize("header", ["Upload-Length", "Upload-Offset"])
def test_non_ascii_digits_in_a_number_header_are_400(tus: Tus, header: str) -> None:
    if header == "Upload-Length":
        resp = tus.api.client.post(
            "/api/v1/uploads",
            headers=tus.headers(
                **{"Upload-Length": "²", "Upload-Metadata": f"sha256 {b64(sha256(b'x'))}"}
            ),
        )
        assert resp.status_code == 400
        assert error_of(resp) == "upload.length_required"
        return
    url = tus.create(10, sha256(b"x")).headers["Location"]
    resp = tus.api.client.patch(
        url,
        data=b"x",
        headers=tus.headers(
            **{"Upload-Offset": "²", "Content-Type": "application/offset+octet-stream"}
        ),
    )
    assert resp.status_code == 400
    assert error_of(resp) == "request.bad_request"


def test_checksum_mismatch_on_creation_with_upload_creates_nothing(app: Any, tus: Tus) -> None:
    data = GPS_PHOTO.read_bytes()
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    resp = tus.api.client.post(
        "/api/v1/uploads",
        data=data,
        headers=tus.headers(
            **{
                "Upload-Length": str(len(data)),
                "Upload-Metadata": f"sha256 {b64(sha256(data))}",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": f"sha256 {wrong}",
            }
        ),
    )
    assert resp.status_code == 460
    assert error_of(resp) == "upload.checksum_mismatch"
    assert_nothing_left(app)
    with app.extensions["fieldsync"].sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Upload)) == 0


class _ProbingBody(io.BytesIO):
    """A request body that, halfway through, checks that nothing of the request holds the
    database: on SQLite another writer can begin at once (no busy wait); on PostgreSQL the
    upload's row can be locked at once (NOWAIT) and no connection sits in a transaction."""

    def __init__(self, data: bytes, probe: Any) -> None:
        super().__init__(data)
        self._half = len(data) // 2
        self._probe = probe
        self.probed = False

    def _maybe_probe(self) -> None:
        if not self.probed and self.tell() >= self._half:
            self._probe()
            self.probed = True

    def read(self, size: int | None = -1) -> bytes:
        self._maybe_probe()
        return super().read(min(size, 64 * 1024) if size and size > 0 else 64 * 1024)

    def readinto(self, buffer: Any) -> int:
        self._maybe_probe()
        return super().readinto(memoryview(buffer)[: 64 * 1024])


def test_no_transaction_is_held_while_a_chunk_arrives(app: Any, tus: Tus) -> None:
    """A phone on a slow network must not hold up everybody else while it sends a chunk."""
    engine = app.extensions["fieldsync"].engine
    data = GPS_PHOTO.read_bytes()
    url = tus.create(len(data), sha256(data)).headers["Location"]
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])

    def probe() -> None:
        if engine.dialect.name == "sqlite":
            raw = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
            try:
                raw.execute("BEGIN IMMEDIATE")  # "database is locked" if a writer holds it
                raw.execute("ROLLBACK")
            finally:
                raw.close()
        else:
            with engine.connect() as conn:
                conn.execute(
                    select(Upload.id).where(Upload.id == upload_id).with_for_update(nowait=True)
                ).one()
                open_transactions = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid() "
                        "AND state LIKE 'idle in transaction%'"
                    )
                ).scalar_one()
                assert open_transactions == 0
                conn.rollback()

    body = _ProbingBody(data, probe)
    resp = tus.api.client.patch(
        url,
        input_stream=body,
        headers=tus.headers(
            **{
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(len(data)),
            }
        ),
    )
    assert body.probed
    assert resp.status_code == 204, resp.get_json()
    assert evidence_count(app) == 1


@pytest.mark.parametrize(
    "captured_at",
    ["yesterday", "2026-11-25T08:00:00", "9999-12-31T23:59:59-05:00", "20261125T080000Z"],
)
def test_captured_at_must_be_a_time_with_its_zone(app: Any, tus: Tus, captured_at: str) -> None:
    resp = tus.create(100, sha256(b"x"), captured_at=captured_at)
    assert resp.status_code == 400
    assert error_of(resp) == "upload.invalid_metadata"
    with app.extensions["fieldsync"].sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Upload)) == 0
