"""Photo evidence on the device, without a server: capture into the profile with its SHA-256,
the evidence mutation in the same step, the upload's bookkeeping, and progress lines."""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PHOTOS

from fieldsync.client.cli import ProgressLine
from fieldsync.client.store import Crash, Store
from fieldsync.client.sync import ClientError, DeviceClient, Offline, upload_verdict

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
NODE = "device-a"
PHOTO = PHOTOS / "jpg_gps_DSCN0010.jpg"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "profile" / "device.sqlite3")
    yield s
    s.close()


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    """A photo as the camera left it, outside the profile."""
    path = tmp_path / "DCIM" / "DSCN0010.JPG"
    path.parent.mkdir()
    shutil.copyfile(PHOTO, path)
    return path


def _take(store: Store, source: Path, rid: str, **kw: Any) -> dict[str, Any]:
    return store.add_photo(
        source,
        entity="inspection",
        entity_id=rid,
        captured_at=NOW - timedelta(minutes=1),
        now=NOW,
        node=NODE,
        **kw,
    )


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t: [tuple(r) for r in store.conn.execute(f"SELECT * FROM {t} ORDER BY 1")]
        for t in ("meta", "records", "outbox", "photos")
    }


def test_a_photo_is_kept_with_its_hash_and_named_in_the_records_evidence(
    store: Store, camera: Path
) -> None:
    rid = str(uuid.uuid4())
    store.enqueue(
        entity="inspection",
        entity_id=rid,
        action="upsert",
        set_={"description": "摊贩"},
        now=NOW,
        node=NODE,
    )
    photo = _take(store, camera, rid)
    digest = hashlib.sha256(PHOTO.read_bytes()).hexdigest()
    assert photo["sha256"] == digest
    assert photo["size"] == PHOTO.stat().st_size
    assert photo["filename"] == "DSCN0010.JPG" and photo["content_type"] == "image/jpeg"
    assert photo["captured_at"] == "2026-11-25T07:59:00.000Z"
    assert (photo["entity"], photo["entity_id"], photo["state"]) == ("inspection", rid, "pending")
    # the copy in the profile is what will be uploaded, whatever happens to the camera's file
    camera.unlink()
    kept = store.photo_file(photo)
    assert kept.parent == store.photos_dir
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == digest
    # the record can sync before the bytes: a plain evidence mutation, in device_seq order
    entry = store.outbox_entry(photo["device_seq"])
    assert entry is not None and photo["device_seq"] == 2
    assert entry["type"] == "inspection.upsert" and entry["add"] == {"evidence": [digest]}
    assert store.record("inspection", rid) == {"description": "摊贩", "evidence": [digest]}
    assert [p["sha256"] for p in store.photos("pending")] == [digest]


@pytest.mark.parametrize("point", ["photo.copied", "enqueue.inserted", "photo.recorded"])
def test_a_crash_while_taking_a_photo_records_nothing_and_taking_it_again_works(
    store: Store, camera: Path, point: str
) -> None:
    rid = str(uuid.uuid4())
    before = _tables(store)

    def crash(name: str) -> None:
        if name == point:
            raise Crash(name)

    store.fault = crash
    with pytest.raises(Crash):
        _take(store, camera, rid)
    store.fault = None
    assert _tables(store) == before
    photo = _take(store, camera, rid)
    assert photo["device_seq"] == 1 and store.pending_count() == 1
    # at most the one copy, reused; no half-written file
    assert [p.name for p in store.photos_dir.iterdir()] == [photo["sha256"] + ".jpg"]


def test_the_same_bytes_for_a_second_record_are_uploaded_once(store: Store, camera: Path) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    first = _take(store, camera, a)
    second = _take(store, camera, b)
    assert second == first  # the photo stays the first record's; its bytes go up once
    assert len(store.photos()) == 1
    assert [p["add"] for p in store.pending()] == [{"evidence": [first["sha256"]]}] * 2
    assert store.record("inspection", b) == {"evidence": [first["sha256"]]}


def _pushed(seq: int, rid: str, evidence: list[str], missing: list[str]) -> dict[str, Any]:
    return {
        "protocol": 1,
        "last_device_seq": seq,
        "server_time": "2026-11-25T08:00:00Z",
        "results": [
            {
                "device_seq": seq,
                "status": "applied",
                "entity": "inspection",
                "id": rid,
                "version": seq,
                "data": {"evidence": evidence, "evidence_missing": missing},
            }
        ],
        "missing_evidence": missing,
    }


def test_a_push_answer_saying_the_server_holds_the_bytes_ends_the_upload(
    store: Store, camera: Path, tmp_path: Path
) -> None:
    rid = str(uuid.uuid4())
    mine = _take(store, camera, rid)["sha256"]
    other = tmp_path / "DSCN0012.JPG"
    shutil.copyfile(PHOTOS / "jpg_gps_DSCN0012.jpg", other)
    theirs = _take(store, other, rid)["sha256"]
    # the server lacks the first photo, and already holds the second (another phone sent it)
    response = _pushed(2, rid, [mine, theirs], [mine])
    response["results"].insert(0, {**response["results"][0], "device_seq": 1})
    store.apply_push(response, now=NOW)
    assert store.photo(mine)["state"] == "pending"  # type: ignore[index]
    assert store.photo(theirs)["state"] == "uploaded"  # type: ignore[index]


def test_a_hash_the_push_reports_missing_is_not_taken_as_held(store: Store, camera: Path) -> None:
    rid = str(uuid.uuid4())
    mine = _take(store, camera, rid)["sha256"]
    # a replayed result can carry an older copy of the record; missing_evidence has the last word
    response = _pushed(1, rid, [mine], [])
    response["missing_evidence"] = [mine]
    store.apply_push(response, now=NOW)
    assert store.photo(mine)["state"] == "pending"  # type: ignore[index]


def test_the_upload_url_is_kept_until_the_server_loses_it(store: Store, camera: Path) -> None:
    sha = _take(store, camera, str(uuid.uuid4()))["sha256"]
    store.photo_upload_created(sha, "http://server/api/v1/uploads/1")
    store.photo_offset(sha, 2 << 20)
    store.close()
    reopened = Store(store.path)  # a restart: the upload resumes, it is not made again
    photo = reopened.photo(sha)
    assert photo is not None
    assert (photo["upload_url"], photo["offset"]) == ("http://server/api/v1/uploads/1", 2 << 20)
    reopened.photo_upload_lost(sha)
    assert reopened.photo(sha)["upload_url"] is None  # type: ignore[index]
    reopened.photo_refused(sha, code="evidence.not_an_image", message="no", now=NOW)
    assert reopened.photos("pending") == []  # never sent again
    assert reopened.photos("refused")[0]["code"] == "evidence.not_an_image"
    reopened.close()


def test_the_client_refuses_a_photo_for_a_submitted_or_unknown_record_or_a_missing_file(
    tmp_path: Path, camera: Path
) -> None:
    phone = DeviceClient(tmp_path / "phone", "http://127.0.0.1:9")
    try:
        with pytest.raises(ClientError, match="not on this device"):
            phone.add_photo("inspection", str(uuid.uuid4()), camera)
        rid = phone.new_inspection(matter_code="CG-001", description="x")
        with pytest.raises(ClientError, match="no photo file"):
            phone.add_photo("inspection", rid, camera.with_name("gone.jpg"))
        phone.submit("inspection", rid)
        with pytest.raises(ClientError, match="submitted") as raised:
            phone.add_photo("inspection", rid, camera)
        assert raised.value.hint
        assert phone.store.photos() == [] and phone.store.pending_count() == 2
    finally:
        phone.close()


@pytest.mark.parametrize(
    ("status", "code", "has_upload", "verdict"),
    [
        (None, None, True, "retry"),  # no answer: the network broke
        (503, "server.unavailable", True, "retry"),
        (460, "upload.checksum_mismatch", True, "retry"),  # the chunk was dropped
        (409, "upload.offset_mismatch", True, "retry"),  # HEAD tells where to go on
        (413, "request.too_large", True, "smaller"),
        (413, "evidence.too_large", False, "refuse"),  # the photo itself is over the limit
        (410, None, True, "ask"),  # HEAD has no body: expired, or refused?
        (404, None, True, "ask"),
        (404, "request.not_found", False, "stop"),  # no tus endpoint on this server
        (401, "auth.device_revoked", True, "sign_in"),
        (403, "auth.forbidden", False, "stop"),
        (412, "upload.version_unsupported", False, "stop"),
        (422, "evidence.not_an_image", True, "refuse"),
        (422, "upload.hash_mismatch", False, "refuse"),
        (400, "upload.invalid_metadata", False, "refuse"),
    ],
)
def test_what_the_client_does_after_each_upload_failure(
    status: int | None, code: str | None, has_upload: bool, verdict: str
) -> None:
    assert upload_verdict(status, code, has_upload=has_upload) == verdict


# --- progress ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_progress_is_plain_lines_at_start_periodically_and_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    progress = ProgressLine(out, live=False, interval=5.0, clock=clock)
    mb = 1 << 20
    progress("push", 0, 1200)
    progress("push", 500, 1200)  # within the interval: not printed
    clock.now += 6
    progress("push", 1000, 1200)
    progress("push", 1200, 1200)  # the end always shows
    progress("upload", 0, 20 * mb, "a.jpg")  # a new step always shows
    progress("upload", 2 * mb, 20 * mb, "a.jpg")
    progress("upload", 20 * mb, 20 * mb, "a.jpg")
    assert out.getvalue().splitlines() == [
        "  push: 0/1200 change(s)",
        "  push: 1000/1200 change(s)",
        "  push: 1200/1200 change(s)",
        "  upload a.jpg: 0 bytes of 20.0 MB (0%)",
        "  upload a.jpg: 20.0 MB of 20.0 MB (100%)",
    ]
    progress.end()
    assert out.getvalue().endswith("(100%)\n")  # no extra line off a terminal


def test_on_a_terminal_progress_is_one_live_line_closed_before_other_output() -> None:
    out = io.StringIO()
    progress = ProgressLine(out, live=True, clock=Clock())
    progress("pull", 500, None)
    progress("pull", 900, None)
    assert out.getvalue() == "\r  pull: 500 change(s)   \r  pull: 900 change(s)   "
    progress.end()
    assert out.getvalue().endswith("   \n")


def test_an_upload_over_a_connection_that_stalls_gives_up_and_says_so(
    tmp_path: Path, camera: Path
) -> None:
    """A server that takes the connection and never answers (no reset: a dead cell, a captive
    portal): each request times out like a broken one, the retries run out, and the officer is
    told, instead of the command hanging until killed."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])  # read nothing, answer nothing
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    outcome: dict[str, Any] = {}

    def upload() -> None:  # the client in this thread: its SQLite store stays in it
        client = DeviceClient(
            tmp_path / "phone",
            server=f"http://127.0.0.1:{listener.getsockname()[1]}",
            timeout=0.3,
            max_attempts=2,
            sleep=lambda _s: None,
        )
        client.store.set(token="a-token")
        rid = str(uuid.uuid4())
        client.store.enqueue(
            entity="inspection", entity_id=rid, action="upsert", set_={}, now=NOW, node=NODE
        )
        _take(client.store, camera, rid)
        try:
            client.upload_photos()
        except ClientError as error:
            outcome["error"] = error
        outcome["pending"] = len(client.store.photos("pending"))
        client.store.close()

    worker = threading.Thread(target=upload, daemon=True)
    worker.start()
    worker.join(30)
    listener.close()
    for conn in held:
        conn.close()
    assert not worker.is_alive(), "the upload hangs on a connection that stalls"
    error = outcome["error"]
    assert isinstance(error, Offline) and "keeps failing" in str(error)
    assert "Timeout" in str(error) and "resume" in error.hint
    assert outcome["pending"] == 1  # kept for the next sync
