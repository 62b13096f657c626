"""End to end: a real gunicorn server (2 workers) and the real tuspy client from PyPI: a 20 MB
photo interrupted at several offsets and resumed from the offset the server reports; the same
photo from two devices stored once, the second sending no byte."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import PHOTOS
from gunicorn_server import gunicorn  # type: ignore[import-not-found]
from sqlalchemy import create_engine, func, select
from tusclient import client as tus_client
from tusclient import request as tus_request

from fieldsync.demo import password_for
from fieldsync.evidence.models import CustodyEvent, Evidence, Upload

pytestmark = pytest.mark.e2e

MB = 1 << 20
SIZE = 20 * MB


@pytest.fixture
def server(migrated_url: str, demo: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn with 2 workers on this run's database (demo data loaded through the app)."""
    env = {"FIELDSYNC_UPLOAD_MAX_BYTES": str(64 * MB)}
    with gunicorn(migrated_url, tmp_path, env=env) as served:
        yield served.url, served.data_dir


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 MB valid JPEG: a real camera photo followed, after its end-of-image marker, by a
    motion-photo style trailer (an MP4 `ftyp` box and noise without any `<`), as phones do."""
    path = tmp_path_factory.mktemp("photo") / "motion_photo.jpg"
    photo = (PHOTOS / "jpg_gps_DSCN0010.jpg").read_bytes()
    noise = random.Random(5).randbytes(SIZE - len(photo) - 16).replace(b"<", b">")
    path.write_bytes(photo + b"\x00\x00\x00\x10ftypmp42\x00\x00\x00\x00" + noise)
    assert path.stat().st_size == SIZE
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MB):
            digest.update(block)
    return digest.hexdigest()


def login(url: str, username: str) -> str:
    resp = requests.post(
        f"{url}/api/v1/auth/devices",
        json={
            "username": username,
            "password": password_for(username),
            "device_id": str(os.urandom(16).hex()[:8]) + "-0000-4000-8000-000000000000",
            "device_name": f"{username}'s phone",
        },
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


def tus_for(url: str, token: str) -> tus_client.TusClient:
    return tus_client.TusClient(
        f"{url}/api/v1/uploads", headers={"Authorization": f"Bearer {token}"}
    )


def metadata(path: Path, digest: str) -> dict[str, str]:
    return {
        "sha256": digest,
        "filename": path.name,
        "content_type": "image/jpeg",
        "captured_at": "2008-10-22T08:28:39Z",
    }


def interrupt_mid_chunk(
    upload_url: str, token: str, offset: int, data: bytes, *, checksum: bool = False
) -> None:
    """A PATCH of one 1 MB chunk whose connection breaks after a third of its body (the phone
    lost the network), with or without an Upload-Checksum of the whole chunk."""
    host, port = upload_url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + upload_url.split("//", 1)[1].split("/", 1)[1]
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {MB}\r\nConnection: close\r\n"
    )
    if checksum:
        digest = base64.b64encode(hashlib.sha256(data[:MB]).digest()).decode()
        head += f"Upload-Checksum: sha256 {digest}\r\n"
    head = (head + "\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + data[: MB // 3])
    time.sleep(0.3)  # let the server notice the broken body


def db_engine(migrated_url: str) -> Any:
    return create_engine(migrated_url)


def test_interrupted_20_mb_upload_resumes_from_the_servers_offset(
    server: tuple[str, Path], big_photo: Path, migrated_url: str
) -> None:
    url, data_dir = server
    token = login(url, "cg_wang")
    client = tus_for(url, token)
    digest = sha256_file(big_photo)
    meta = metadata(big_photo, digest)

    # OPTIONS: what the server offers
    options = requests.options(f"{url}/api/v1/uploads", timeout=10)
    assert options.headers["Tus-Version"] == "1.0.0"
    assert "sha256" in options.headers["Tus-Checksum-Algorithm"]

    # 1. three chunks, then the phone goes away
    first = client.uploader(
        str(big_photo), chunk_size=MB, metadata=meta, upload_checksum=True, retries=0
    )
    for _ in range(3):
        first.upload_chunk()
    assert first.offset == 3 * MB
    upload_url = first.url

    # 2. the network breaks in the middle of the fourth chunk, sent with a checksum of the
    # whole chunk: the part that arrived cannot be verified, so it is dropped
    data = big_photo.read_bytes()
    interrupt_mid_chunk(upload_url, token, 3 * MB, data[3 * MB : 4 * MB], checksum=True)
    again = client.uploader(str(big_photo), url=upload_url, chunk_size=MB, upload_checksum=True)
    assert again.offset == 3 * MB

    # 3. it breaks again, this time without a checksum: the server keeps what arrived (tus),
    # and a new uploader (the app restarted) asks where to resume (HEAD) and goes on from there
    interrupt_mid_chunk(upload_url, token, 3 * MB, data[3 * MB : 4 * MB])
    del data
    second = client.uploader(str(big_photo), url=upload_url, chunk_size=MB, upload_checksum=True)
    assert second.offset == 3 * MB + MB // 3
    second.upload(stop_at=7 * MB + 12345)  # a stop that is not on a chunk boundary
    assert second.offset == 7 * MB + 12345

    # 4. and again, from yet another uploader, this one with sha256 chunk checksums
    class Sha256Uploader(type(second)):  # type: ignore[misc]
        CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    third = Sha256Uploader(
        str(big_photo), url=upload_url, client=client, chunk_size=MB, upload_checksum=True
    )
    assert third.offset == 7 * MB + 12345
    for _ in range(4):
        third.upload_chunk()
    head = requests.head(
        upload_url, headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    )
    assert head.headers["Upload-Offset"] == str(third.offset)
    assert head.headers["Upload-Length"] == str(SIZE)
    assert "Upload-Expires" in head.headers

    # 5. the last stretch, to the end
    last = client.uploader(str(big_photo), url=upload_url, chunk_size=MB, upload_checksum=True)
    assert last.offset == third.offset
    last.upload()
    assert last.offset == SIZE

    # the server holds exactly the phone's bytes, verified, as evidence
    engine = db_engine(migrated_url)
    try:
        with engine.connect() as conn:
            evidence = conn.execute(select(Evidence).where(Evidence.sha256 == digest)).one()
            assert evidence.size == SIZE
            assert evidence.content_type == "image/jpeg"
            actions = conn.scalars(
                select(CustodyEvent.action)
                .where(CustodyEvent.sha256 == digest)
                .order_by(CustodyEvent.id)
            ).all()
            assert actions == ["captured", "uploaded", "verified"]
    finally:
        engine.dispose()
    reviewer = login(url, "reviewer_liang")
    with requests.get(
        f"{url}/api/v1/evidence/{digest}/original",
        headers={"Authorization": f"Bearer {reviewer}"},
        stream=True,
        timeout=60,
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Disposition"].startswith("attachment")
        downloaded = hashlib.sha256()
        for block in resp.iter_content(MB):
            downloaded.update(block)
    assert downloaded.hexdigest() == digest
    assert list((data_dir / "uploads").glob("*.part")) == []


def test_same_photo_from_two_devices_is_stored_once(
    server: tuple[str, Path], big_photo: Path, migrated_url: str, monkeypatch: Any
) -> None:
    url, _data_dir = server
    digest = sha256_file(big_photo)
    wang = tus_for(url, login(url, "cg_wang"))
    wang.uploader(str(big_photo), chunk_size=4 * MB, metadata=metadata(big_photo, digest)).upload()

    patches: list[int] = []
    original_perform = tus_request.TusRequest.perform

    def counting_perform(self: Any) -> None:
        patches.append(self._content_length)
        original_perform(self)

    monkeypatch.setattr(tus_request.TusRequest, "perform", counting_perform)

    # the second phone creates its upload; the server answers: already complete
    liu = tus_for(url, login(url, "cg_liu"))
    creator = liu.uploader(str(big_photo), chunk_size=MB, metadata=metadata(big_photo, digest))
    upload_url = creator.create_url()
    # as any resuming tus client does, it asks for the offset, finds the end, and is done
    second = liu.uploader(str(big_photo), url=upload_url, chunk_size=MB)
    assert second.offset == SIZE
    second.upload()
    assert patches == []  # not one byte sent

    engine = db_engine(migrated_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Evidence)) == 1
            dedup = conn.scalars(select(Upload.deduplicated).order_by(Upload.created_at)).all()
            assert dedup == [False, True]
    finally:
        engine.dispose()


def test_two_devices_finishing_the_same_photo_at_once(
    server: tuple[str, Path], migrated_url: str, tmp_path: Path
) -> None:
    """Both phones send every byte and finish together on two server processes: one evidence,
    both uploads complete, no server error."""
    url, _data_dir = server
    photo = tmp_path / "shared.jpg"
    base = (PHOTOS / "jpg_gps_DSCN0012.jpg").read_bytes()
    photo.write_bytes(base + random.Random(7).randbytes(3 * MB).replace(b"<", b">"))
    digest = sha256_file(photo)
    clients = [tus_for(url, login(url, who)) for who in ("cg_wang", "cg_liu")]
    uploaders = [
        c.uploader(str(photo), chunk_size=MB, metadata=metadata(photo, digest)) for c in clients
    ]
    for u in uploaders:  # both have all but the last chunk
        u.upload(stop_at=3 * MB)
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def finish(u: Any) -> None:
        try:
            barrier.wait(timeout=10)
            u.upload()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=finish, args=(u,)) for u in uploaders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    engine = db_engine(migrated_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Evidence)) == 1
            states = conn.scalars(select(Upload.state)).all()
            assert states == ["complete", "complete"]
    finally:
        engine.dispose()
