"""DeviceClient: sign in, edit offline, push and pull (PROTOCOL.md §1–§3), conflicts.

HTTP lives here; state lives in ``Store``. Each network step ends in one store transaction, so
the client can be killed anywhere and resumes on the next call.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import requests

from fieldsync.client.store import Store, rfc3339, utcnow

DEFAULT_SERVER = "http://127.0.0.1:5000"
API = "/api/v1"

# progress(stage, done, total): stage is "push" or "pull"; total is None when unknown
Progress = Callable[[str, int, int | None], None]


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


@dataclass
class PullSummary:
    changes: int = 0
    pages: int = 0
    restarted: bool = False  # the cursor had expired: the replica was fetched again


@dataclass
class SyncSummary:
    push: PushSummary
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

    # --- sync ---------------------------------------------------------------------------------

    def sync(self) -> SyncSummary:
        """Push what is queued, then pull what changed."""
        pushed = self.push()
        pulled = self.pull()
        self.store.set(last_sync_at=rfc3339(self.now()))
        return SyncSummary(pushed, pulled)

    def push(self) -> PushSummary:
        """Send the outbox from last_acked_seq + 1 in batches until it is empty."""
        summary = PushSummary()
        total = self.store.pending_count()
        batch_size = self.batch_size
        gaps = 0
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
        }

    # --- HTTP ---------------------------------------------------------------------------------

    def _report(self, stage: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

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
        """Retries network errors and 5xx with exponential backoff and full jitter, bounded by
        max_attempts. Pushes are safe to repeat: the server answers replays from its log."""
        last_problem = ""
        for attempt in range(self.max_attempts):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                self.sleep(random.uniform(0, delay))
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
            hint=_hint_for(_error_code(resp)),
        )


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


def _hint_for(code: str | None) -> str:
    return {
        "auth.invalid_credentials": "check the username and password (检查用户名和密码)",
        "auth.device_owned_by_other": "this profile is another officer's phone: "
        "use --profile with a new directory",
        "sync.conflict_resolved": "someone resolved it already; run `fieldsync-device sync`",
        "sync.conflict_not_found": "list them with `fieldsync-device conflicts`",
        "sync.conflict_needs_supervisor": "the inspection is submitted: "
        "ask a reviewer or the captain to resolve it",
    }.get(code or "", "")
