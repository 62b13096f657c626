"""DeviceClient: sign in, edit offline, push and pull (PROTOCOL.md §1–§3), conflicts, and photo
evidence uploaded by tus (§4).

HTTP lives here; state lives in ``Store``. Each network step ends in one store transaction, so
the client can be killed anywhere and resumes on the next call.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

import requests

from fieldsync.client.store import Store, rfc3339, utcnow

DEFAULT_SERVER = "http://127.0.0.1:5000"
API = "/api/v1"
MB = 1 << 20
# tus PATCH bodies: big enough to keep a slow link busy, small enough that a dropped connection
# loses little, and under the server's chunk limit (8 MiB by default)
CHUNK_SIZE = 2 * MB
MIN_CHUNK_SIZE = 256 << 10


class Progress(Protocol):
    """progress(stage, done, total, item): stage is "push", "pull" (changes) or "upload" (bytes
    of the photo named by `item`); total is None when unknown."""

    def __call__(self, stage: str, done: int, total: int | None, item: str = "") -> None: ...


class ClientError(Exception):
    """Something the officer should know about: what happened (`message`) and what to do
    (`hint`). `code` is the server's machine code when there is one."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


class Offline(ClientError):
    """The server could not be reached (or kept failing) after the bounded retries."""

    exit_code = 3


class NotSignedIn(ClientError):
    exit_code = 4


class Refused(ClientError):
    """The server answered with an error for the whole request."""


@dataclass
class PushSummary:
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    missing_evidence: set[str] = field(default_factory=set)  # what the server said it lacks


@dataclass
class PullSummary:
    changes: int = 0
    pages: int = 0
    restarted: bool = False  # the cursor had expired: the replica was fetched again


@dataclass
class PhotoSent:
    sha256: str
    filename: str
    size: int
    sent: int  # bytes this run sent (0: the server had them all already)
    resumed_at: int  # the server's offset when this run took the photo up


@dataclass
class UploadSummary:
    uploaded: list[PhotoSent] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # photos, with code and message
    unreadable: list[dict[str, Any]] = field(default_factory=list)  # the copy is gone or changed

    @property
    def bytes_sent(self) -> int:
        return sum(p.sent for p in self.uploaded)


@dataclass
class SyncSummary:
    push: PushSummary
    photos: UploadSummary
    pull: PullSummary


class DeviceClient:
    """One phone: a profile directory holding its store, talking to one server."""

    def __init__(
        self,
        profile: Path | str,
        server: str | None = None,
        *,
        http: requests.Session | None = None,
        progress: Progress | None = None,
        language: str = "en",
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        batch_size: int = 500,
        page_limit: int = 500,
        chunk_size: int = CHUNK_SIZE,
        max_pages: int = 100_000,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.profile = Path(profile)
        self.store = Store(self.profile / "device.sqlite3")
        if server:
            self.store.set(server=server.rstrip("/"))
        self.server = str(self.store.get("server") or DEFAULT_SERVER)
        self.http = http or requests.Session()
        self.progress = progress
        self.language = language
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.batch_size = min(batch_size, 500)
        self.page_limit = page_limit
        self.chunk_size = max(MIN_CHUNK_SIZE, chunk_size)
        self.max_pages = max_pages
        self.sleep = sleep
        self.now = now

    def close(self) -> None:
        self.store.close()
        self.http.close()

    # --- identity -----------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return self.store.device_id()

    @property
    def username(self) -> str | None:
        return self.store.get("username")

    def login(self, username: str, password: str, *, device_name: str | None = None) -> dict:
        """Register this device for `username`; keeps the token (PROTOCOL.md §1)."""
        current = self.username
        if current and current != username and self.store.pending_count():
            raise ClientError(
                f"this profile belongs to {current} and holds "
                f"{self.store.pending_count()} unsynced changes",
                hint=f"sync them as {current} first, or use another --profile for {username}",
            )
        body = {
            "username": username,
            "password": password,
            "device_id": self.device_id,
            "device_name": device_name or f"fieldsync-device {self.profile.name}",
        }
        resp = self._request("POST", "/auth/devices", json=body, auth=False)
        data = self._ok(resp, 201)
        self.store.set(username=username, token=data["token"], user=data.get("user"))
        return data

    # --- local edits --------------------------------------------------------------------------

    def edit(
        self,
        entity: str,
        record_id: str,
        *,
        set: Mapping[str, Any] | None = None,  # the protocol's name for it
        add: Mapping[str, list[Any]] | None = None,
        remove: Mapping[str, list[Any]] | None = None,
    ) -> dict[str, Any]:
        """Queue an upsert and apply it to the local copy at once (works offline)."""
        return self._enqueue(entity, record_id, "upsert", set_=set, add=add, remove=remove)

    def submit(self, entity: str, record_id: str) -> dict[str, Any]:
        """Queue `<entity>.submit` (归队: back at the team, the record is handed in)."""
        return self._enqueue(entity, record_id, "submit")

    def delete(self, entity: str, record_id: str) -> dict[str, Any]:
        return self._enqueue(entity, record_id, "delete")

    def new_inspection(self, **fields: Any) -> str:
        """A new inspection with a device-made id; `occurred_at` defaults to now."""
        record_id = str(uuid.uuid4())
        values = {"occurred_at": rfc3339(self.now()), **fields}
        self.edit("inspection", record_id, set={k: v for k, v in values.items() if v is not None})
        return record_id

    def _enqueue(self, entity: str, record_id: str, action: str, **body: Any) -> dict[str, Any]:
        return self.store.enqueue(
            entity=entity,
            entity_id=str(uuid.UUID(str(record_id))),
            action=action,
            now=self.now(),
            node=self.device_id,
            **body,
        )

    def record(self, entity: str, record_id: str) -> dict[str, Any] | None:
        return self.store.record(entity, record_id)

    def add_photo(
        self,
        entity: str,
        record_id: str,
        source: Path | str,
        *,
        captured_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Take a photo as evidence of a record (拍照取证), offline: the file is kept in the
        profile with its SHA-256, and the hash goes into the record's evidence through the
        outbox, so the record syncs before the bytes; `sync` uploads them."""
        record_id = str(uuid.UUID(str(record_id)))
        view = self.record(entity, record_id)
        if view is None:
            raise ClientError(
                f"{entity} {record_id} is not on this device",
                hint="run `fieldsync-device sync` to fetch it; see `fieldsync-device inspect list`",
            )
        if view.get("status", "draft") != "draft":
            raise ClientError(
                f"{entity} {record_id} is submitted (已提交): its evidence no longer changes",
                hint="photos are added before submission; a reviewer can ask for more evidence",
            )
        source = Path(source)
        if not source.is_file():
            raise ClientError(
                f"no photo file at {source}", hint="give the path of a JPEG, PNG or HEIC photo"
            )
        return self.store.add_photo(
            source,
            entity=entity,
            entity_id=record_id,
            captured_at=captured_at or self.now(),
            now=self.now(),
            node=self.device_id,
        )

    # --- sync ---------------------------------------------------------------------------------

    def sync(self) -> SyncSummary:
        """Push what is queued, upload the photos the server lacks, then pull what changed
        (which brings the records with their evidence_missing cleared)."""
        pushed = self.push()
        photos = self.upload_photos()
        pulled = self.pull()
        self.store.set(last_sync_at=rfc3339(self.now()))
        return SyncSummary(pushed, photos, pulled)

    def push(self) -> PushSummary:
        """Send the outbox from last_acked_seq + 1 in batches until it is empty."""
        summary = PushSummary()
        total = self.store.pending_count()
        batch_size = self.batch_size
        gaps = 0
        if total:
            self._report("push", 0, total)
        while True:
            batch = self.store.pending(limit=batch_size)
            if not batch:
                return summary
            body = {"protocol": 1, "device_id": self.device_id, "mutations": batch}
            resp = self._request("POST", "/sync/push", json=body)
            error_code = _error_code(resp)
            if resp.status_code == 409 and error_code == "sync.sequence_gap":
                gaps += 1
                if gaps > 3:
                    raise Refused("the server keeps asking for older changes", code=error_code)
                expected = int(resp.json()["expected_device_seq"])
                try:
                    self.store.rewind(expected)
                except ValueError as error:
                    raise Refused(
                        f"the server is missing changes this phone no longer has ({error})",
                        hint="tell the back office: the server's sync state for this device "
                        "is behind this phone's",
                        code=error_code,
                    ) from None
                continue
            if resp.status_code == 413 and batch_size > 1:
                batch_size = max(1, batch_size // 2)  # too many bytes: smaller batches
                continue
            data = self._ok(resp, 200)
            before = self.store.last_acked_seq
            counts = self.store.apply_push(data, now=self.now())
            if self.store.last_acked_seq <= before:  # never loop on an answer that acks nothing
                raise Refused("the server acknowledged none of the changes sent")
            summary.batches += 1
            summary.sent += len(batch)
            for status, n in counts.items():
                summary.statuses[status] = summary.statuses.get(status, 0) + n
            summary.missing_evidence.update(data.get("missing_evidence") or [])
            self._report("push", summary.sent, max(total, summary.sent))

    def pull(self) -> PullSummary:
        """Page through the changes since the cursor until has_more is false."""
        summary = PullSummary()
        for _ in range(self.max_pages):
            params: dict[str, Any] = {"limit": self.page_limit}
            cursor = self.store.cursor
            if cursor:
                params["cursor"] = cursor
            resp = self._request("GET", "/sync/pull", params=params)
            error = _error_code(resp)
            if cursor and error in ("sync.cursor_expired", "sync.cursor_invalid"):
                if summary.restarted:
                    raise Refused("the server refused a fresh cursor", code=error)
                # too old (or the server's key changed): start over, the outbox stays
                self.store.reset_replica()
                summary.restarted = True
                continue
            page = self._ok(resp, 200)
            summary.changes += self.store.apply_pull_page(page, now=self.now())
            summary.pages += 1
            self._report("pull", summary.changes, None)
            if not page.get("has_more"):
                return summary
        raise Refused(f"the pull did not finish within {self.max_pages} pages")

    # --- photo evidence (tus) -----------------------------------------------------------------

    def upload_photos(self) -> UploadSummary:
        """Send every photo the server does not hold yet, each resumed from the offset the
        server reports. A photo the server refuses is kept with the reason and never sent
        again; a network that keeps failing ends the run, and the next run resumes."""
        summary = UploadSummary()
        for photo in self.store.photos("pending"):
            path = self.store.photo_file(photo)
            if not path.is_file() or path.stat().st_size != photo["size"]:
                summary.unreadable.append(photo)
                continue
            with path.open("rb") as stream:
                self._upload(photo, stream, summary)
        return summary

    def _upload(self, photo: Mapping[str, Any], stream: Any, summary: UploadSummary) -> None:
        tus = _tus()
        _tus_timeout.set(self.timeout)
        sha256, size, name = str(photo["sha256"]), int(photo["size"]), str(photo["filename"])
        client = tus.TusClient(self.server + API + "/uploads", headers=self._headers(auth=True))
        chunk_size = self.chunk_size
        failures = restarts = sent = 0
        sent_at_failure = 0
        resumed_at: int | None = None
        while True:
            url = (self.store.photo(sha256) or {}).get("upload_url")
            try:
                if not url:
                    creator = tus.Uploader(
                        file_stream=stream, client=client, metadata=_photo_metadata(photo)
                    )
                    url = str(creator.create_url())
                    self.store.photo_upload_created(sha256, url)
                # HEAD: where the server stands, whoever sent the bytes before
                uploader = tus.Uploader(
                    file_stream=stream,
                    client=client,
                    url=url,
                    chunk_size=chunk_size,
                    upload_checksum=True,
                )
                if resumed_at is None:
                    resumed_at = int(uploader.offset)
                self.store.photo_offset(sha256, uploader.offset)
                self._report("upload", uploader.offset, size, name)
                while uploader.offset < size:
                    before = uploader.offset
                    uploader.upload_chunk()
                    sent += uploader.offset - before
                    self.store.photo_offset(sha256, uploader.offset)
                    self._report("upload", uploader.offset, size, name)
                self.store.photo_uploaded(sha256, now=self.now())
                summary.uploaded.append(PhotoSent(sha256, name, size, sent, resumed_at))
                return
            except tus.Error as error:
                status, code, message = _tus_failure(error)
            verdict = upload_verdict(status, code, has_upload=bool(url))
            if verdict == "retry":
                # only failures in a row count: a long upload on a flaky network gets through
                if sent > sent_at_failure:
                    failures, sent_at_failure = 0, sent
                failures += 1
                if failures >= self.max_attempts:
                    offset = int((self.store.photo(sha256) or {}).get("offset") or 0)
                    problem = message if status is None else f"HTTP {status}"
                    raise Offline(
                        f"the upload of photo {name} keeps failing ({problem}; 照片上传中断)",
                        hint=f"{size_text(offset)} of {size_text(size)} are on the server and "
                        "nothing is lost: run `fieldsync-device sync` again to resume from there",
                    )
                self._pause(failures)
                continue
            if verdict == "smaller" and chunk_size > MIN_CHUNK_SIZE:
                chunk_size //= 2
                continue
            if verdict == "ask":
                refusal = self._upload_refusal(str(url))
                if refusal is None:  # expired or gone: the bytes are here, start a new upload
                    restarts += 1
                    if restarts > 2:
                        raise Refused(
                            f"the server keeps losing the upload of photo {name}",
                            hint="try again later; if it persists, tell the back office",
                        )
                    self.store.photo_upload_lost(sha256)
                    continue
                code, message = refusal
            elif verdict == "sign_in":
                raise NotSignedIn(
                    message or "the sign-in is no longer valid (登录已失效)",
                    hint="run `fieldsync-device login USERNAME` again; your photos are kept",
                    code=code,
                )
            elif verdict == "stop":
                raise Refused(
                    f"the server does not take this phone's photos: {message or status}",
                    hint=hint_for(code) or "tell the back office; your photos are kept",
                    code=code,
                )
            code = code or f"http.{status}"
            self.store.photo_refused(sha256, code=code, message=message, now=self.now())
            summary.refused.append({**photo, "code": code, "message": message})
            return

    def _upload_refusal(self, url: str) -> tuple[str, str] | None:
        """Why the server answered 404/410 for an upload: (code, message) when it refused the
        bytes, None when the upload is just gone (expired, removed)."""
        resp = self._request("GET", url.split(API, 1)[1])
        if resp.status_code != 200:
            return None
        state = _json(resp) or {}
        if state.get("state") != "failed":
            return None
        refusal = state.get("refusal") or {}
        code = str(refusal.get("code") or state.get("error") or "upload.failed")
        key = "message_zh" if self.language.startswith("zh") else "message"
        return code, str(refusal.get(key) or code)

    # --- conflicts and quarantine -------------------------------------------------------------

    def conflicts(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        """This user's conflicts, with both values (from the server; kept for offline use)."""
        items: list[dict[str, Any]] = []
        page = 1
        while page <= 100:
            resp = self._request(
                "GET",
                "/conflicts",
                params={"open": str(open_only).lower(), "page": page, "page_size": 100},
            )
            batch = self._ok(resp, 200)
            items.extend(batch)
            if len(batch) < 100:
                break
            page += 1
        self.store.note_conflicts(items, now=self.now())
        return items

    def resolve(self, conflict_id: str, resolution: str, *, note: str | None = None) -> dict:
        """`keep` the record as it is, or `take_lost`: the set-aside value replaces it."""
        if resolution not in ("keep", "take_lost"):
            raise ValueError("resolution is keep or take_lost")
        body: dict[str, Any] = {"resolution": resolution}
        if note:
            body["note"] = note
        resp = self._request("POST", f"/conflicts/{conflict_id}/resolve", json=body)
        data = self._ok(resp, 200)
        self.store.note_conflicts([data], now=self.now())
        return data

    def quarantine(self) -> list[dict[str, Any]]:
        resp = self._request("GET", "/quarantine", params={"page_size": 100})
        return self._ok(resp, 200)

    def status(self) -> dict[str, Any]:
        pending_photos = self.store.photos("pending")
        return {
            "server": self.server,
            "username": self.username,
            "device_id": self.store.get("device_id"),
            "pending": self.store.pending_count(),
            "last_seq": self.store.last_seq,
            "last_acked_seq": self.store.last_acked_seq,
            "last_sync_at": self.store.get("last_sync_at"),
            "cursor_at": self.store.get("cursor_at"),
            "has_cursor": bool(self.store.cursor),
            "open_conflicts": len(self.store.conflicts()),
            "rejected": len(self.store.rejected()),
            "photos_pending": len(pending_photos),
            "photos_pending_bytes": sum(p["size"] - p["offset"] for p in pending_photos),
            "photos_refused": len(self.store.photos("refused")),
        }

    # --- HTTP ---------------------------------------------------------------------------------

    def _report(self, stage: str, done: int, total: int | None, item: str = "") -> None:
        if self.progress is not None:
            self.progress(stage, done, total, item)

    def _pause(self, attempt: int) -> None:
        """Before retry number `attempt`: exponential backoff with full jitter."""
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        self.sleep(random.uniform(0, delay))

    def _headers(self, *, auth: bool) -> dict[str, str]:
        headers = {
            "Accept-Language": self.language,
            # the server compares this with its own clock and flags a skewed device
            "Date": format_datetime(self.now(), usegmt=True),
        }
        if auth:
            token = self.store.get("token")
            if not token:
                raise NotSignedIn(
                    "this device is not signed in (设备未登录)",
                    hint="run `fieldsync-device login USERNAME` first",
                )
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP exchange; tests override it to lose responses or the network."""
        return self.http.request(method, url, **kwargs)

    def _request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        """Retries network errors, 5xx and 409 request.concurrent_write with exponential
        backoff and full jitter, bounded by max_attempts. Pushes are safe to repeat: the
        server answers replays from its log."""
        last_problem = ""
        for attempt in range(self.max_attempts):
            if attempt:
                self._pause(attempt)
            try:
                resp = self.send(
                    method,
                    self.server + API + path,
                    headers=self._headers(auth=auth),
                    timeout=self.timeout,
                    **kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                last_problem = type(error).__name__
                continue
            if resp.status_code >= 500:
                last_problem = f"HTTP {resp.status_code}"
                continue
            if resp.status_code == 409 and _error_code(resp) == "request.concurrent_write":
                # the server's "send yours again": another write raced this one
                last_problem = "HTTP 409 request.concurrent_write"
                continue
            if resp.status_code == 401:
                code = _error_code(resp)
                if code == "auth.device_revoked":
                    raise NotSignedIn(
                        _message(resp) or "this device has been revoked (该设备已被停用)",
                        hint="ask the admin; unsynced changes stay in this profile",
                        code=code,
                    )
                if auth:
                    raise NotSignedIn(
                        _message(resp) or "the sign-in is no longer valid (登录已失效)",
                        hint="run `fieldsync-device login USERNAME` again; "
                        "your unsynced changes are kept",
                        code=code,
                    )
            return resp
        pending = self.store.pending_count()
        kept = (
            f"your {pending} change{'s are' if pending != 1 else ' is'} kept on this phone; "
            if pending
            else "nothing was lost; "
        )
        if last_problem.startswith("HTTP"):
            raise Offline(
                f"the server at {self.server} keeps failing ({last_problem}; 服务器故障)",
                hint=kept + "try again later; if it persists, tell the back office",
            )
        raise Offline(
            f"no connection to the server (无法连接服务器: {last_problem}) at {self.server}",
            hint=kept + "run the command again when you have signal "
            "(or check --server); `fieldsync-device sync` sends what is queued",
        )

    def _ok(self, resp: requests.Response, status: int) -> Any:
        if resp.status_code == status:
            return resp.json()
        raise Refused(
            f"the server refused the request: {_message(resp) or resp.reason} "
            f"(HTTP {resp.status_code})",
            code=_error_code(resp),
            hint=hint_for(_error_code(resp)),
        )


def size_text(size: int) -> str:
    if size >= MB:
        return f"{size / MB:.1f} MB"
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


@dataclass(frozen=True)
class _Tus:
    TusClient: Any
    Uploader: Any
    Error: Any


# the timeout of the upload running in this thread (see _TimedRequests)
_tus_timeout: contextvars.ContextVar[float] = contextvars.ContextVar("tus_timeout", default=30.0)


class _TimedRequests:
    """What tuspy's modules see as `requests`: the same, but HEAD, POST and PATCH with the
    client's timeout. tuspy 1.1 passes none, so a connection that stalls (no bytes, no reset:
    a dead cell, a captive portal) would hang an upload until the officer killed it; with one
    it fails like a broken connection, and the upload resumes from the server's offset."""

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)  # exceptions, codes, …

    def head(self, *args: Any, **kwargs: Any) -> requests.Response:
        return requests.head(*args, **{"timeout": _tus_timeout.get(), **kwargs})

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        return requests.post(*args, **{"timeout": _tus_timeout.get(), **kwargs})

    def patch(self, *args: Any, **kwargs: Any) -> requests.Response:
        return requests.patch(*args, **{"timeout": _tus_timeout.get(), **kwargs})


@functools.cache
def _tus() -> _Tus:
    """tuspy, imported on first use: it loads aiohttp, slow for commands that upload nothing."""
    import tusclient.request
    import tusclient.uploader.baseuploader
    import tusclient.uploader.uploader
    from tusclient.client import TusClient
    from tusclient.exceptions import TusCommunicationError
    from tusclient.uploader import Uploader

    for module in (tusclient.request, tusclient.uploader.baseuploader, tusclient.uploader.uploader):
        module.requests = _TimedRequests()  # type: ignore[attr-defined]

    class Sha256Uploader(Uploader):  # type: ignore[misc]
        # Upload-Checksum of every chunk in sha256 (tuspy's default is sha1)
        CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    return _Tus(TusClient, Sha256Uploader, TusCommunicationError)


def _photo_metadata(photo: Mapping[str, Any]) -> dict[str, str]:
    """Upload-Metadata (PROTOCOL.md §4): the hash computed at capture and what the phone knows."""
    meta = {
        "sha256": str(photo["sha256"]),
        "filename": str(photo["filename"]),
        "captured_at": str(photo["captured_at"]),
    }
    if photo.get("content_type"):
        meta["content_type"] = str(photo["content_type"])
    if photo["entity"] == "inspection":
        meta["inspection_id"] = str(photo["entity_id"])
    return meta


def upload_verdict(status: int | None, code: str | None, *, has_upload: bool) -> str:
    """What to do after a tus request failed with `status` (None: no answer) and `code`:

    - "retry": the connection broke, the server failed, or a chunk arrived damaged (460) or
      out of step (409): ask the server for its offset (HEAD) and go on from there;
    - "smaller": the chunk is over the server's body limit;
    - "ask": the upload is gone (404) or closed (410): GET says whether it expired (start a
      new one) or the bytes were refused;
    - "sign_in": the token is no longer valid;
    - "stop": this server takes no photos from this phone (role, protocol, no tus endpoint);
    - "refuse": these bytes never become evidence (not an image, too large, hash mismatch).
    """
    if status is None or status >= 500 or status in (409, 460):
        return "retry"
    if status == 413 and code != "evidence.too_large":
        return "smaller"
    if status in (404, 410) and has_upload:
        return "ask"
    if status == 401:
        return "sign_in"
    if status in (403, 404, 412):
        return "stop"
    return "refuse"


def _tus_failure(error: Exception) -> tuple[int | None, str | None, str]:
    """(HTTP status, machine code, message) of a tuspy error; status None: no answer at all."""
    status = getattr(error, "status_code", None)
    content = getattr(error, "response_content", None)
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        return status, body.get("error"), str(body.get("message") or "")
    cause = error.args[0] if error.args and isinstance(error.args[0], Exception) else error
    return status, None, type(cause).__name__ if status is None else str(error)


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _error_code(resp: requests.Response) -> str | None:
    if resp.status_code < 400:
        return None
    body = _json(resp)
    return body.get("error") if isinstance(body, dict) else None


def _message(resp: requests.Response) -> str:
    body = _json(resp)
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        errors = body.get("errors")
        return f"{message} {errors}" if errors else message
    return ""


def hint_for(code: str | None) -> str:
    return {
        "auth.invalid_credentials": "check the username and password (检查用户名和密码)",
        "auth.device_owned_by_other": "this profile is another officer's phone: "
        "use --profile with a new directory",
        "sync.conflict_resolved": "someone resolved it already; run `fieldsync-device sync`",
        "sync.conflict_not_found": "list them with `fieldsync-device conflicts`",
        "sync.conflict_needs_supervisor": "the inspection is submitted: "
        "ask a reviewer or the captain to resolve it",
        "auth.forbidden": "your role does not take photo evidence; ask the admin",
        "evidence.not_an_image": "take the photo again with the camera and add it with "
        "`fieldsync-device photo`",
        "evidence.corrupt_image": "the file is damaged: take the photo again and add it with "
        "`fieldsync-device photo`",
        "evidence.markup_content": "this file is not a plain photo: take the photo again and "
        "add it with `fieldsync-device photo`",
        "evidence.decompression_bomb": "take the photo again at the camera's normal resolution",
        "evidence.empty": "take the photo again and add it with `fieldsync-device photo`",
        "evidence.too_large": "take the photo again at a lower resolution, or ask the back "
        "office to raise the upload limit",
        "upload.hash_mismatch": "the kept copy changed after it was taken: take the photo "
        "again and add it with `fieldsync-device photo`",
    }.get(code or "", "")
