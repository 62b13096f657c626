"""End to end: `fieldsync-device` as real processes against a real gunicorn server, through a
TCP relay that plays the phone's network (down, or hanging mid-request). Photo evidence recorded
offline ends verified on the server; a client killed (SIGKILL) in the middle of a photo upload
resumes from the server's offset; a client killed while a push's answer is on the way has every
mutation applied exactly once; and the commands of the quick tour answer as the tour says."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PHOTOS
from gunicorn_server import free_port, gunicorn  # type: ignore[import-not-found]
from sqlalchemy import func, select

from fieldsync.client.store import Store
from fieldsync.client.sync import CHUNK_SIZE, DeviceClient, size_text

pytestmark = pytest.mark.e2e

MB = 1 << 20
PHOTO = PHOTOS / "jpg_gps_DSCN0010.jpg"
DEADLINE_S = 90  # any one wait: the test fails rather than hangs
_SCRIPT = Path(sys.executable).with_name("fieldsync-device")
DEVICE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "fieldsync.client.cli"]


@pytest.fixture
def server(migrated_url: str, demo: Any, tmp_path: Path) -> Iterator[int]:
    """gunicorn with 2 sync workers on this run's database; yields its port."""
    with gunicorn(migrated_url, tmp_path) as served:
        yield served.port


# --- the phone's network ----------------------------------------------------------------------


@dataclass
class _Stall:
    pattern: bytes  # seen going to the server …
    nth: int  # … for the nth time, then
    after: int  # this many more bytes pass
    direction: str  # "up": nothing more reaches the server; "down": no answer reaches the phone


class _Link:
    def __init__(self, phone: socket.socket, server: socket.socket) -> None:
        self.phone, self.server = phone, server
        self.stalled_up = False
        self.stalled_down = False
        self.server_done = threading.Event()  # the server closed its side: request handled


class Relay:
    """A TCP relay between the phone and the server. `down()` refuses connections; `stall()`
    makes one connection hang mid-request as a bad network does, so that a test can kill the
    client at a known point and know what the server received; `count()` tells how many bytes
    and how many matches of a pattern went to the server since the last `reset()`."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.links: list[_Link] = []
        self.listener: socket.socket | None = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.sent_up = 0
            self.watched: dict[bytes, int] = {}
            self.plan: _Stall | None = None
            self.seen = 0
            self.threshold: int | None = None
            self.stalled: _Link | None = None
            self.stalled_event = threading.Event()

    def up(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self) -> None:
        if self.listener is not None:
            # shutdown first: a bare close() leaves the socket listening until the blocked
            # accept() returns, and one more connection would get through
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None

    def watch(self, *patterns: bytes) -> None:
        with self.lock:
            self.watched = {p: 0 for p in patterns}

    def stall(self, pattern: bytes, nth: int, *, after: int = 0, direction: str) -> None:
        with self.lock:
            self.plan = _Stall(pattern, nth, after, direction)

    def wait_stalled(self) -> _Link:
        if not self.stalled_event.wait(DEADLINE_S):
            pytest.fail("the relay never reached its stall point")
        assert self.stalled is not None
        return self.stalled

    def drop(self) -> None:
        """The phone is gone: its connections close, and the server sees the end of what it
        was sent. Returns once the server has handled every request that was in flight."""
        for link in list(self.links):
            for sock, how in ((link.server, socket.SHUT_WR), (link.phone, socket.SHUT_RDWR)):
                try:
                    sock.shutdown(how)
                except OSError:
                    pass
            link.phone.close()
        for link in list(self.links):
            if not link.server_done.wait(DEADLINE_S):
                pytest.fail("the server never finished a request the relay dropped")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                phone, _ = listener.accept()
            except OSError:
                return
            if listener is not self.listener:  # went down meanwhile
                phone.close()
                return
            server = socket.create_connection(("127.0.0.1", self.server_port))
            link = _Link(phone, server)
            self.links.append(link)
            threading.Thread(target=self._up, args=(link,), daemon=True).start()
            threading.Thread(target=self._down, args=(link,), daemon=True).start()

    def _up(self, link: _Link) -> None:
        tail = b""
        try:
            while data := link.phone.recv(1 << 16):
                with self.lock:
                    passing = self._observe(link, tail, data)
                    keep = max(len(p) for p in [b"", *self.watched, *self._plan_pattern()])
                    tail = (tail + data)[-keep:] if keep else b""
                    self.sent_up += len(passing)
                link.server.sendall(passing)
                if link.stalled_up:
                    self.stalled_event.set()
                    return  # the rest never arrives; drop() ends it
            link.server.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _plan_pattern(self) -> list[bytes]:
        return [self.plan.pattern] if self.plan else []

    def _observe(self, link: _Link, tail: bytes, data: bytes) -> bytes:
        """What of `data` passes to the server (under the lock)."""
        window = tail + data
        for pattern in self.watched:
            self.watched[pattern] += _new_matches(window, len(tail), pattern)
        plan = self.plan
        if plan is None or (self.stalled is not None and self.stalled is not link):
            return data
        if self.threshold is None:
            start = 0
            while (i := window.find(plan.pattern, start)) != -1:
                start = i + 1
                if i + len(plan.pattern) <= len(tail):
                    continue  # counted with the previous read
                self.seen += 1
                if self.seen == plan.nth:
                    self.threshold = self.sent_up - len(tail) + i + plan.after
                    break
        if self.threshold is None:
            return data
        self.stalled = link
        if plan.direction == "down":
            link.stalled_down = True
            return data
        allowed = self.threshold - self.sent_up
        if allowed >= len(data):
            return data
        link.stalled_up = True
        return data[: max(0, allowed)]

    def _down(self, link: _Link) -> None:
        try:
            while data := link.server.recv(1 << 16):
                if link.stalled_down:
                    self.stalled_event.set()
                    continue  # the answer is lost on the way
                link.phone.sendall(data)
        except OSError:
            pass
        finally:
            link.server_done.set()
            if not (link.stalled_up or link.stalled_down):
                try:
                    link.phone.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            link.server.close()


def _new_matches(window: bytes, old: int, pattern: bytes) -> int:
    """Matches of `pattern` in `window` that end past its first `old` bytes."""
    count, start = 0, 0
    while (i := window.find(pattern, start)) != -1:
        start = i + 1
        count += i + len(pattern) > old
    return count


@pytest.fixture
def relay(server: int) -> Iterator[Relay]:
    r = Relay(server)
    r.up()
    yield r
    r.down()


# --- the client as a process ------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSYNC_")}
    return {**env, "FIELDSYNC_DEVICE_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def device(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEVICE, "--profile", str(profile), *args],
        capture_output=True,
        text=True,
        env=_env(profile.parent),
        timeout=DEADLINE_S,
    )


def device_in_background(profile: Path, *args: str) -> subprocess.Popen[str]:
    out = (profile.parent / f"{profile.name}.out").open("w")
    return subprocess.Popen(
        [*DEVICE, "--profile", str(profile), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(profile.parent),
    )


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def signed_in(relay: Relay, profile: Path, username: str) -> None:
    out = ok(
        device(profile, "login", username, "--password", "fieldsync-demo", "--server", relay.url)
    )
    assert f"signed in as {username}" in out
    assert "done (同步完成)" in ok(device(profile, "sync"))


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL


def _session(app: Any) -> Any:
    return app.extensions["fieldsync"].sessionmaker()


# --- the tests --------------------------------------------------------------------------------


def test_a_photo_taken_offline_syncs_and_ends_verified(
    relay: Relay, app: Any, tmp_path: Path
) -> None:
    from fieldsync.evidence.models import CustodyEvent, Evidence
    from fieldsync.inspections.models import Inspection

    phone = tmp_path / "phone-a"
    signed_in(relay, phone, "cg_wang")
    relay.down()  # no signal from here on
    rid = ok(device(phone, "inspect", "new", "--matter", "CG-001", "--description", "占道经营"))
    rid = rid.strip()
    taken = device(phone, "photo", rid[:8], str(PHOTO))
    assert f"photo {PHOTO.name} (" in ok(taken) and f"added to inspection {rid}" in taken.stdout
    assert "2 change(s) and 1 photo(s) waiting to sync" in taken.stderr
    assert "photos:        1 waiting to upload" in ok(device(phone, "status"))

    offline = device(phone, "sync")
    assert offline.returncode == 3, offline
    assert "no connection to the server" in offline.stderr and "what to do:" in offline.stderr

    relay.up()
    synced = device(phone, "sync")
    out = ok(synced)
    assert "2 change(s) to send, 1 photo(s) to upload" in out
    assert "sent 2 change(s): 2 applied" in out
    assert re.search(rf"photo {PHOTO.name} \(\d+ KB\) uploaded \(照片已上传\): sent \d+ KB", out)
    assert out.rstrip().endswith("done (同步完成)")
    assert f"upload {PHOTO.name}: 0 bytes of" in synced.stderr  # progress lines, off a tty
    assert f"upload {PHOTO.name}: {size_text(PHOTO.stat().st_size)} of" in synced.stderr

    store = Store(phone / "device.sqlite3")
    try:
        (photo,) = store.photos()
        record = store.record("inspection", rid)
    finally:
        store.close()
    assert photo["state"] == "uploaded"
    # the pull after the upload brought the record with nothing missing
    assert record is not None and record["evidence"] == [photo["sha256"]]
    assert record["evidence_missing"] == []
    with _session(app) as session:
        evidence = session.scalars(select(Evidence).filter_by(sha256=photo["sha256"])).one_or_none()
        assert evidence is not None and evidence.size == PHOTO.stat().st_size
        assert evidence.content_type == "image/jpeg" and evidence.filename == PHOTO.name
        actions = session.scalars(
            select(CustodyEvent.action)
            .where(CustodyEvent.sha256 == photo["sha256"])
            .order_by(CustodyEvent.id)
        ).all()
        assert actions == ["captured", "uploaded", "verified"]
        inspection = session.get(Inspection, uuid.UUID(rid))
        assert inspection is not None
        assert inspection.evidence == [photo["sha256"]] and inspection.evidence_missing == []
    shown = ok(device(phone, "inspect", "show", rid))
    assert f"{photo['sha256'][:12]} {PHOTO.name} — on the server (已上传)" in shown


@pytest.fixture
def big_photo(tmp_path: Path) -> Path:
    """A 20 MB valid JPEG: the real photo, then a motion-photo style trailer after its
    end-of-image marker (an MP4 `ftyp` box and noise without any `<`), as phones write."""
    path = tmp_path / "motion_photo.jpg"
    photo = PHOTO.read_bytes()
    noise = random.Random(11).randbytes(20 * MB - len(photo) - 16).replace(b"<", b">")
    path.write_bytes(photo + b"\x00\x00\x00\x10ftypmp42\x00\x00\x00\x00" + noise)
    return path


def test_a_client_killed_mid_upload_resumes_from_the_servers_offset(
    relay: Relay, app: Any, tmp_path: Path, big_photo: Path
) -> None:
    from fieldsync.evidence.models import Evidence, Upload
    from fieldsync.inspections.models import Inspection

    size = big_photo.stat().st_size
    phone = tmp_path / "phone-a"
    signed_in(relay, phone, "cg_wang")
    rid = ok(device(phone, "inspect", "new", "--matter", "CG-001", "--description", "x")).strip()
    ok(device(phone, "photo", rid, str(big_photo)))

    # the network hangs halfway through the fourth chunk; then the phone dies (SIGKILL)
    relay.stall(b"PATCH /api/v1/uploads/", 4, after=CHUNK_SIZE // 2, direction="up")
    first = device_in_background(phone, "sync")
    relay.wait_stalled()
    kill(first)
    relay.drop()
    with _session(app) as session:
        (upload,) = session.scalars(select(Upload)).all()
        assert (upload.state, upload.offset) == ("receiving", 3 * CHUNK_SIZE)
        assert (
            session.scalars(select(Evidence).filter_by(sha256=upload.sha256)).one_or_none() is None
        )
    store = Store(phone / "device.sqlite3")
    try:
        (photo,) = store.photos()
    finally:
        store.close()
    assert photo["state"] == "pending" and photo["upload_url"].endswith(f"/uploads/{upload.id}")

    # restarted: it asks the server where to resume (HEAD) and sends only the rest
    relay.reset()
    relay.watch(b"PATCH /api/v1/uploads/", b"POST /api/v1/uploads")
    second = device(phone, "sync")
    out = ok(second)
    resumed = size_text(3 * CHUNK_SIZE)
    assert (
        f"photo {big_photo.name} ({size_text(size)}) uploaded (照片已上传): "
        f"resumed at {resumed}, sent {size_text(size - 3 * CHUNK_SIZE)}"
    ) in out
    assert f"upload {big_photo.name}: {resumed} of {size_text(size)} (30%)" in second.stderr
    rest = size - 3 * CHUNK_SIZE
    assert rest < relay.sent_up < rest + 256 * 1024  # the rest of the file, and little else
    assert relay.watched[b"POST /api/v1/uploads"] == 0  # no new upload made
    assert relay.watched[b"PATCH /api/v1/uploads/"] == -(-rest // CHUNK_SIZE)
    with _session(app) as session:
        evidence = session.scalars(select(Evidence).filter_by(sha256=photo["sha256"])).one_or_none()
        assert evidence is not None and evidence.size == size
        assert session.scalar(select(func.count()).select_from(Upload)) == 1
        inspection = session.get(Inspection, uuid.UUID(rid))
        assert inspection is not None and inspection.evidence_missing == []
    assert "resumed" not in ok(device(phone, "sync"))  # nothing left to send


@pytest.mark.parametrize("fate", ["expired", "refused"])
def test_an_upload_the_server_closed_while_the_phone_was_dead(
    relay: Relay, app: Any, tmp_path: Path, big_photo: Path, fate: str
) -> None:
    """HEAD answers 410 without a body: the client asks (GET) why. Expired: it starts a new
    upload, once. Refused (the answer to the last chunk was lost): it says why and stops."""
    from fieldsync.errors import flag
    from fieldsync.evidence.models import Evidence, Upload

    phone = tmp_path / "phone-a"
    signed_in(relay, phone, "cg_wang")
    rid = ok(device(phone, "inspect", "new", "--matter", "CG-001", "--description", "x")).strip()
    ok(device(phone, "photo", rid, str(big_photo)))
    relay.stall(b"PATCH /api/v1/uploads/", 2, after=CHUNK_SIZE // 2, direction="up")
    first = device_in_background(phone, "sync")
    relay.wait_stalled()
    kill(first)
    relay.drop()
    with _session(app) as session, session.begin():
        (upload,) = session.scalars(select(Upload)).all()
        if fate == "expired":
            upload.expires_at = upload.created_at - timedelta(seconds=1)
        else:
            upload.state, upload.error = "failed", "evidence.markup_content"
            upload.refusal = flag("evidence.markup_content", marker="<script")

    relay.reset()
    relay.watch(b"POST /api/v1/uploads")
    second = device(phone, "sync")
    with _session(app) as session:
        uploads = session.scalar(select(func.count()).select_from(Upload))
        evidence = session.scalar(select(func.count()).select_from(Evidence))
    if fate == "expired":
        assert f"photo {big_photo.name} (20.0 MB) uploaded (照片已上传): sent 20.0 MB" in ok(second)
        assert relay.watched[b"POST /api/v1/uploads"] == 1  # one new upload
        assert (uploads, evidence) == (2, 1)
    else:
        assert second.returncode == 5
        assert f"photo refused (照片被拒收) {big_photo.name}" in second.stdout
        assert (
            "evidence.markup_content — The file contains web markup or script (<script) and "
            "cannot be evidence." in second.stdout
        )
        assert "what to do: this file is not a plain photo" in second.stdout
        assert relay.watched[b"POST /api/v1/uploads"] == 0
        assert (uploads, evidence) == (1, 0)
        assert "refused (被拒收)" in ok(device(phone, "photos"))


def test_a_client_killed_while_a_push_answer_is_on_the_way_applies_each_mutation_once(
    relay: Relay, app: Any, tmp_path: Path
) -> None:
    from fieldsync.inspections.models import Inspection
    from fieldsync.sync.models import Event, MutationRecord

    total = 1200  # three pushes: 500, 500, 200
    phone = tmp_path / "phone-a"
    signed_in(relay, phone, "cg_wang")
    offline = DeviceClient(phone)  # the officer's day in the field, recorded on the phone
    try:
        device_id = offline.device_id
        for n in range(total):
            offline.new_inspection(matter_code="CG-001", description=f"摊贩 {n}")
    finally:
        offline.close()

    # the server applies the second push; its answer never reaches the phone, which dies
    relay.stall(b"POST /api/v1/sync/push", 2, direction="down")
    first = device_in_background(phone, "sync")
    assert relay.wait_stalled().server_done.wait(DEADLINE_S), "the server never answered"
    kill(first)
    relay.drop()
    store = Store(phone / "device.sqlite3")
    try:
        assert store.last_acked_seq == 500  # the phone stored only the first answer
    finally:
        store.close()
    with _session(app) as session:
        assert session.scalar(select(func.count()).select_from(MutationRecord)) == 1000

    relay.reset()
    relay.watch(b"POST /api/v1/sync/push")
    out = ok(device(phone, "sync"))
    assert "(700 change(s) to send)" in out and "sent 700 change(s): 700 applied" in out
    assert relay.watched[b"POST /api/v1/sync/push"] == 2  # 501–1000 again (replays), then the rest

    with _session(app) as session:
        seqs = session.scalars(
            select(MutationRecord.device_seq).where(
                MutationRecord.device_id == uuid.UUID(device_id)
            )
        ).all()
        assert sorted(seqs) == list(range(1, total + 1))  # each exactly once
        descriptions = session.scalars(select(Inspection.description)).all()
        assert sorted(descriptions) == sorted(f"摊贩 {n}" for n in range(total))
        upserts = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.device_id == uuid.UUID(device_id), Event.action == "inspection.upsert")
        )
        assert upserts == total
    store = Store(phone / "device.sqlite3")
    try:
        assert store.pending_count() == 0 and store.last_acked_seq == total
        statuses = {store.outbox_entry(s)["status"] for s in range(1, total + 1)}  # type: ignore[index]
        assert statuses == {"applied"}
    finally:
        store.close()


def test_the_quick_tour_commands(relay: Relay, app: Any, tmp_path: Path) -> None:
    a, b = tmp_path / "tour-a", tmp_path / "tour-b"

    refused = device(a, "login", "cg_wang", "--password", "wrong", "--server", relay.url)
    assert refused.returncode == 1
    assert "what to do: check the username and password" in refused.stderr
    not_in = device(a, "sync")
    assert not_in.returncode == 4 and "fieldsync-device login" in not_in.stderr
    assert device(a, "inspect").returncode == 2  # wrong usage

    login = ok(device(a, "login", "cg_wang", "--password", "fieldsync-demo", "--server", relay.url))
    assert "signed in as cg_wang (王建国) on device" in login
    first = ok(device(a, "sync"))
    assert "(0 change(s) to send)" in first and "done (同步完成)" in first
    assert re.search(r"received \d+ change\(s\) in 1 page\(s\)", first)
    signed_in(relay, b, "cg_liu")

    new = device(
        a,
        "inspect",
        "new",
        "--matter",
        "CG-001",
        "--description",
        "占道经营：东华门大街12号门前流动摊贩",
        "--address",
        "东华门大街12号",
        "--present",
        "cg_wang",
        "cg_liu",
    )
    rid = str(uuid.UUID(ok(new).strip()))
    assert "saved on this phone (已保存在本机); 1 change(s) waiting to sync" in new.stderr
    status = ok(device(a, "status"))
    assert "user:          cg_wang" in status
    assert "pending:       1 change(s) not yet acknowledged by the server (待同步)" in status
    assert "sent 1 change(s): 1 applied" in ok(device(a, "sync"))

    ok(device(b, "sync"))
    shown = ok(device(b, "inspect", "show", rid))
    assert f"inspection {rid} (server version 1; 0 unsynced change(s))" in shown
    assert 'tier:         "enforcement"' in shown and "present:      cg_wang, cg_liu" in shown

    ok(device(a, "inspect", "edit", rid, "--description", "流动摊贩3处，已劝离"))
    ok(device(b, "inspect", "edit", rid, "--description", "流动摊贩2处，1处拒不改正，已拍照"))
    assert "sent 1 change(s): 1 applied" in ok(device(a, "sync"))
    conflicted = ok(device(b, "sync"))
    assert "sent 1 change(s): 1 conflict" in conflicted
    assert "1 conflict(s) (冲突): nothing is lost" in conflicted
    listed = ok(device(b, "conflicts"))
    match = re.search(rf"conflict ([0-9a-f-]{{36}})  inspection {rid}  v\d+  \[open\]", listed)
    assert match, listed
    assert 'kept (in the record now):  "流动摊贩2处，1处拒不改正，已拍照"' in listed
    assert 'set aside (the value that was on the server):  "流动摊贩3处，已劝离"' in listed
    resolved = ok(device(b, "conflicts", "resolve", match.group(1)[:8], "--take-lost"))
    assert f"conflict {match.group(1)} resolved (已处理): took the set-aside value" in resolved
    assert "no open conflicts (无冲突)" in ok(device(b, "conflicts"))
    ok(device(a, "sync"))
    assert 'description:  "流动摊贩3处，已劝离"' in ok(device(a, "inspect", "show", rid))

    # no signal: nothing is lost, exit 3; with signal again the submission goes through
    ok(device(a, "inspect", "submit", rid))
    relay.down()
    offline = device(a, "sync")
    assert offline.returncode == 3
    assert "what to do: your 1 change is kept on this phone" in offline.stderr
    relay.up()
    assert "sent 1 change(s): 1 applied" in ok(device(a, "sync"))
    assert 'status:       "diverted"' in ok(device(a, "inspect", "show", rid))

    # a change the server refuses goes to the quarantine and does not block the queue: exit 5
    ok(device(b, "inspect", "new", "--matter", "NO-SUCH", "--description", "typo"))
    typo = device(b, "sync")
    assert typo.returncode == 5
    assert "sent 1 change(s): 1 rejected" in typo.stdout
    assert "org.unknown_matter — Unknown matter: NO-SUCH." in typo.stdout
    assert "inspection.upsert" in ok(device(b, "quarantine"))


def test_a_refused_photo_is_said_once_and_a_photo_the_server_holds_is_not_sent(
    relay: Relay, tmp_path: Path
) -> None:
    a, b = tmp_path / "phone-a", tmp_path / "phone-b"
    signed_in(relay, a, "cg_wang")
    signed_in(relay, b, "cg_liu")

    def new_inspection(phone: Path) -> str:
        args = ("inspect", "new", "--matter", "CG-001", "--description", "x")
        return ok(device(phone, *args)).strip()

    # a file the server refuses as evidence: what happened, what to do, and never sent again
    notes = tmp_path / "notes.jpg"
    notes.write_text("a shopping list, not a photo")
    ok(device(b, "photo", new_inspection(b), str(notes)))
    refused = device(b, "sync")
    assert refused.returncode == 5
    assert "sent 2 change(s): 2 applied" in refused.stdout
    assert re.search(
        r"photo refused \(照片被拒收\) notes\.jpg of inspection [0-9a-f-]{36}: "
        r"evidence\.not_an_image — The file is not a JPEG, PNG or HEIC/HEIF image\.",
        refused.stdout,
    )
    assert "what to do: take the photo again" in refused.stdout
    relay.reset()
    relay.watch(b"/api/v1/uploads")
    again = ok(device(b, "sync"))
    assert "photo" not in again and relay.watched[b"/api/v1/uploads"] == 0
    listed = ok(device(b, "photos"))
    assert "refused (被拒收)" in listed and "evidence.not_an_image" in listed

    # the same photo on a second phone: the push answer says the server holds it, no byte sent
    ok(device(a, "photo", new_inspection(a), str(PHOTO)))
    assert "uploaded (照片已上传)" in ok(device(a, "sync"))
    ok(device(b, "photo", new_inspection(b), str(PHOTO)))
    relay.reset()
    relay.watch(b"/api/v1/uploads")
    dedup = ok(device(b, "sync"))
    assert f"photo {PHOTO.name} (" in dedup and "the server had it already" in dedup
    assert relay.watched[b"/api/v1/uploads"] == 0
