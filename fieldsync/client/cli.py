"""`fieldsync-device`: the reference client on the command line (what a phone app does).

Exit codes: 0 done; 1 refused or failed; 2 wrong usage; 3 no connection (changes kept);
4 not signed in; 5 synced, but some changes were rejected (see `quarantine`) or some photos
refused (see `photos`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from fieldsync.client.store import parse_time, utcnow
from fieldsync.client.sync import ClientError, DeviceClient, NotSignedIn, hint_for, size_text

HOME = Path(os.environ.get("FIELDSYNC_DEVICE_HOME", "~/.fieldsync-device")).expanduser()
EXIT_REJECTED = 5


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = ProgressLine(sys.stderr, live=sys.stderr.isatty())
    client = DeviceClient(
        _profile(args.profile), args.server, progress=progress, language=args.lang
    )
    try:
        return int(args.run(client, args) or 0)
    except ClientError as error:
        progress.end()
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"what to do: {error.hint}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        progress.end()
        print(
            "\ninterrupted: nothing is lost — run the command again to continue",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): what was asked for has been shown; say nothing more
        # (stdout points at nothing now, so that the interpreter's final flush stays quiet)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        client.close()


def _profile(value: str) -> Path:
    # a bare name is a profile under ~/.fieldsync-device; anything with a slash is a directory
    return Path(value).expanduser() if os.sep in value or value.startswith(".") else HOME / value


def _parser() -> argparse.ArgumentParser:
    # the global options work before or after the command: `fieldsync-device sync --profile x`
    # (argparse shares option objects with parents: each parser gets its own copy)
    def common() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument(
            "--profile",
            default=argparse.SUPPRESS,
            help="profile directory, or a name under ~/.fieldsync-device (default: default)",
        )
        p.add_argument(
            "--server",
            default=argparse.SUPPRESS,
            help="server URL, remembered in the profile (default http://127.0.0.1:5000)",
        )
        p.add_argument(
            "--lang",
            default=argparse.SUPPRESS,
            choices=["en", "zh-CN"],
            help="language of the server's messages",
        )
        return p

    parser = argparse.ArgumentParser(
        prog="fieldsync-device",
        description="fieldsync reference device client (执法终端): record inspections offline, "
        "sync them when there is signal.",
        parents=[common()],
    )
    parser.set_defaults(profile="default", server=None, lang="en")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, run: Any, into: Any = sub) -> argparse.ArgumentParser:
        p = into.add_parser(name, help=help_, description=help_, parents=[common()])
        p.set_defaults(run=run)
        return p

    p = command("login", "sign in on this device (登录)", _login)
    p.add_argument("username")
    p.add_argument("--password", help="default: asked for (not echoed)")
    p.add_argument("--device-name", help="how the back office sees this device")

    inspect = sub.add_parser("inspect", help="inspections (巡查记录)", parents=[common()])
    isub = inspect.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command("new", "record a new inspection (新建巡查); prints its id", _inspect_new, isub)
    p.add_argument("--matter", required=True, help="matter code, e.g. CG-001")
    p.add_argument("--description", required=True)
    p.add_argument("--address")
    p.add_argument(
        "--present", nargs="+", default=[], metavar="OFFICER", help="officers on scene (id or user)"
    )
    p = command("edit", "change an inspection (修改)", _inspect_edit, isub)
    p.add_argument("id")
    p.add_argument("--description")
    p.add_argument("--address")
    p.add_argument("--matter")
    p.add_argument("--present", nargs="+", default=[], metavar="OFFICER", help="add officers")
    p = command("submit", "hand the inspection in (归队提交)", _inspect_submit, isub)
    p.add_argument("id")
    p = command("show", "show an inspection as this device has it", _inspect_show, isub)
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="every field, as JSON")
    command("list", "inspections on this device", _inspect_list, isub)

    p = command(
        "photo",
        "add a photo to an inspection or report (拍照取证): kept on this phone, uploaded by `sync`",
        _photo,
    )
    p.add_argument("id", help="inspection or report id (or an unambiguous prefix)")
    p.add_argument("file", help="the photo: JPEG, PNG or HEIC")
    p.add_argument("--captured-at", help="when it was taken, RFC 3339 (default: now)")
    command("photos", "photos on this device and whether the server has them (照片)", _photos)

    command("sync", "push queued changes, upload photos, then pull (同步)", _sync)
    command("status", "what is queued, when this device last synced", _status)
    p = command("conflicts", "conflicts with both values (冲突)", _conflicts)
    p.add_argument("--all", action="store_true", help="resolved ones too")
    csub = p.add_subparsers(dest="action", metavar="ACTION")
    p = command("resolve", "resolve a conflict (处理冲突)", _resolve, csub)
    p.add_argument("conflict_id")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--keep", action="store_const", const="keep", dest="resolution")
    which.add_argument("--take-lost", action="store_const", const="take_lost", dest="resolution")
    p.add_argument("--note")
    command("quarantine", "this device's rejected changes (被拒绝的变更)", _quarantine)
    return parser


class ProgressLine:
    """Progress of long steps: on a terminal one live line rewritten in place; otherwise (a log,
    a pipe) plain lines, one when a step starts, then at most one per `interval` seconds, and
    one when it ends."""

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.live = live
        self.interval = interval
        self.clock = clock
        self.step: tuple[str, str] | None = None
        self.printed_at = 0.0
        self.open_line = False

    def __call__(self, stage: str, done: int, total: int | None, item: str = "") -> None:
        text = _progress_text(stage, done, total, item)
        if self.live:
            print(f"\r  {text}   ", end="", file=self.stream, flush=True)
            self.open_line = True
            return
        now = self.clock()
        step = (stage, item)
        finished = total is not None and done >= total
        if step != self.step or finished or now - self.printed_at >= self.interval:
            print(f"  {text}", file=self.stream, flush=True)
            self.step, self.printed_at = step, now

    def end(self) -> None:
        """Close the live line before other output."""
        if self.open_line:
            print(file=self.stream, flush=True)
            self.open_line = False


def _progress_text(stage: str, done: int, total: int | None, item: str) -> str:
    if stage == "upload":
        share = f" ({100 * done // total}%)" if total else ""
        return f"upload {item}: {size_text(done)} of {size_text(total or 0)}{share}"
    if total is None:
        return f"{stage}: {done} change(s)"
    return f"{stage}: {done}/{total} change(s)"


# --- commands ---------------------------------------------------------------------------------


def _login(client: DeviceClient, args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass(f"password for {args.username}: ")
    data = client.login(args.username, password, device_name=args.device_name)
    user = data.get("user") or {}
    print(
        f"signed in as {user.get('username', args.username)} ({user.get('full_name', '')}) "
        f"on device {client.device_id}"
    )
    print(f"profile: {client.profile}   server: {client.server}")
    print("next: `fieldsync-device sync` to fetch your street's records (首次同步)")
    return 0


def _inspect_new(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    record_id = client.new_inspection(
        matter_code=args.matter,
        description=args.description,
        address=args.address,
        present=_officer_ids(client, args.present) or None,
    )
    print(record_id)
    print(f"saved on this phone (已保存在本机); {_queued(client)}", file=sys.stderr)
    return 0


def _inspect_edit(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    record_id = _known(client, args.id)
    values = {
        "description": args.description,
        "address": args.address,
        "matter_code": args.matter,
    }
    set_ = {k: v for k, v in values.items() if v is not None}
    add = {"present": _officer_ids(client, args.present)} if args.present else {}
    if not set_ and not add:
        raise ClientError(
            "nothing to change", hint="give --description, --address, --matter or --present"
        )
    client.edit("inspection", record_id, set=set_, add=add)
    print(f"changed inspection {record_id} on this phone; {_queued(client)}")
    return 0


def _inspect_submit(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    record_id = _known(client, args.id)
    client.submit("inspection", record_id)
    print(f"inspection {record_id} marked for submission (归队提交); {_queued(client)}")
    return 0


def _inspect_show(client: DeviceClient, args: argparse.Namespace) -> int:
    record_id = _known(client, args.id)
    view = client.record("inspection", record_id)
    if view is None:
        raise ClientError(
            f"inspection {record_id} is not on this device",
            hint="run `fieldsync-device sync` to fetch it; see `fieldsync-device inspect list`",
        )
    version, _server = client.store.server_record("inspection", record_id)
    pending = [p for p in client.store.pending() if p["entity_id"] == record_id]
    where = f"server version {version}" if version else "not on the server yet"
    print(f"inspection {record_id} ({where}; {len(pending)} unsynced change(s))")
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2, sort_keys=True))
        return 0
    people = {
        pid: data.get("username") for pid, (_v, data) in client.store.records("person").items()
    }
    for name in ("matter_code", "description", "address", "status", "tier", "occurred_at"):
        print(f"  {name + ':':<14}{_show(view.get(name))}")
    present = [people.get(p, p) for p in view.get("present") or []]
    print(f"  {'present:':<14}{', '.join(present) or '-'}")
    lacking = set(view.get("evidence_missing") or [])
    for sha256 in view.get("evidence") or []:
        photo = client.store.photo(sha256)
        if photo is not None:
            where = f"{photo['filename']} — {_photo_state(photo)}"
        elif sha256 in lacking:
            where = "taken on another device, not on the server yet"
        else:
            where = "taken on another device, on the server"
        print(f"  {'photo:':<14}{sha256[:12]} {where}")
    for flag in view.get("flags") or []:
        print(f"  flag: {flag.get('code')} — {flag.get('message')}")
    return 0


def _inspect_list(client: DeviceClient, args: argparse.Namespace) -> int:
    rows = client.store.conn.execute(
        "SELECT id, version FROM records WHERE entity = 'inspection' ORDER BY id"
    ).fetchall()
    for row in rows:
        view = client.record("inspection", row["id"])
        if view is None:
            continue
        desc = (view.get("description") or "").replace("\n", " ")[:50]
        state = f"v{row['version']}" if row["version"] else "new"
        print(
            f"{row['id']}  {state:>4}  {view.get('status', 'draft'):<9}  "
            f"{view.get('matter_code') or '-':<7}  {desc}"
        )
    if not rows:
        print("no inspections on this device yet")
    return 0


def _photo(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    entity, record_id = _known_record(client, args.id)
    captured_at = parse_time(args.captured_at) if args.captured_at else None
    if captured_at is not None and captured_at.tzinfo is None:
        raise ClientError(
            f"--captured-at {args.captured_at} has no time zone",
            hint="give it as RFC 3339, e.g. 2026-11-25T09:30:00Z",
        )
    photo = client.add_photo(entity, record_id, args.file, captured_at=captured_at)
    print(
        f"photo {photo['filename']} ({size_text(photo['size'])}, sha256 {photo['sha256'][:12]}) "
        f"added to {entity} {record_id}"
    )
    print(f"saved on this phone (已保存在本机); {_queued(client)}", file=sys.stderr)
    return 0


def _photos(client: DeviceClient, args: argparse.Namespace) -> int:
    photos = client.store.photos()
    if not photos:
        print("no photos on this device yet")
    for photo in photos:
        print(
            f"{photo['sha256'][:12]}  {_photo_state(photo):<30}  {size_text(photo['size']):>8}  "
            f"{photo['entity']} {photo['entity_id'][:8]}  {photo['filename']}"
        )
        if photo["state"] == "refused":
            print(f"    {photo['code']} — {photo['message']}")
            print(f"    what to do: {hint_for(photo['code']) or 'take the photo again'}")
    return 0


def _photo_state(photo: dict[str, Any]) -> str:
    if photo["state"] == "pending" and photo["offset"]:
        return f"uploading ({size_text(photo['offset'])} sent)"
    return {
        "pending": "waiting to upload (待上传)",
        "uploaded": "on the server (已上传)",
        "refused": "refused (被拒收)",
    }.get(photo["state"], photo["state"])


def _sync(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    pending = client.store.pending_count()
    waiting = {p["sha256"]: p for p in client.store.photos("pending")}
    also = f", {len(waiting)} photo(s) to upload" if waiting else ""
    print(f"syncing with {client.server} ({pending} change(s) to send{also}) …", flush=True)
    summary = client.sync()
    _end_progress(client)
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(summary.push.statuses.items()))
    print(f"  sent {summary.push.sent} change(s)" + (f": {statuses}" if statuses else ""))
    sent_now = {p.sha256 for p in summary.photos.uploaded}
    for photo in client.store.photos("uploaded"):
        if photo["sha256"] in waiting and photo["sha256"] not in sent_now:
            print(
                f"  photo {photo['filename']} ({size_text(photo['size'])}): the server had it "
                "already (sent from another phone), no byte sent"
            )
    for sent in summary.photos.uploaded:
        if sent.sent == 0:
            how = "the server had it already, no byte sent"
        elif sent.resumed_at:
            how = f"resumed at {size_text(sent.resumed_at)}, sent {size_text(sent.sent)}"
        else:
            how = f"sent {size_text(sent.sent)}"
        print(f"  photo {sent.filename} ({size_text(sent.size)}) uploaded (照片已上传): {how}")
    for photo in summary.photos.unreadable:
        print(
            f"  photo {photo['filename']} is missing from this phone's store "
            f"({client.store.photo_file(photo)}): take it again with `fieldsync-device photo`"
        )
    for photo in summary.photos.refused:
        print(
            f"  photo refused (照片被拒收) {photo['filename']} of {photo['entity']} "
            f"{photo['entity_id']}: {photo['code']} — {photo['message']}"
        )
        hint = hint_for(photo["code"]) or "see `fieldsync-device photos`"
        print(f"    what to do: {hint}; it will not be sent again")
    held = {p["sha256"] for p in client.store.photos()}
    elsewhere = summary.push.missing_evidence - held
    if elsewhere:
        print(
            f"  the server still lacks {len(elsewhere)} photo(s) these records name that are "
            "not on this phone: they upload from the phone that took them"
        )
    note = " (the cursor had expired: fetched everything again)" if summary.pull.restarted else ""
    print(f"  received {summary.pull.changes} change(s) in {summary.pull.pages} page(s){note}")
    conflicts = summary.push.statuses.get("conflict", 0)
    if conflicts:
        print(
            f"  {conflicts} conflict(s) (冲突): nothing is lost — "
            "see both values with `fieldsync-device conflicts`"
        )
    rejected = summary.push.statuses.get("rejected", 0)
    if rejected:
        for r in client.store.rejected()[-rejected:]:
            print(
                f"  rejected (被拒绝) #{r['device_seq']} {r['type']}: {r['code']} — "
                f"{r['message']} / {r['message_zh']}"
            )
        print("  the rest went through; see `fieldsync-device quarantine`, fix and record again")
    if rejected or summary.photos.refused or summary.photos.unreadable:
        return EXIT_REJECTED
    print("done (同步完成)")
    return 0


def _end_progress(client: DeviceClient) -> None:
    if isinstance(client.progress, ProgressLine):
        client.progress.end()


def _status(client: DeviceClient, args: argparse.Namespace) -> int:
    s = client.status()
    print(f"user:          {s['username'] or '(not signed in)'}")
    print(f"device:        {s['device_id'] or '-'}")
    print(f"server:        {s['server']}")
    print(f"pending:       {s['pending']} change(s) not yet acknowledged by the server (待同步)")
    print(
        f"photos:        {s['photos_pending']} waiting to upload "
        f"({size_text(s['photos_pending_bytes'])} to send), {s['photos_refused']} refused"
    )
    print(f"last sync:     {_ago(s['last_sync_at'])}")
    print(f"cursor age:    {_ago(s['cursor_at']) if s['has_cursor'] else 'none (first sync)'}")
    print(f"conflicts:     {s['open_conflicts']} open")
    print(f"rejected:      {s['rejected']}")
    return 0


def _conflicts(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    try:
        items = client.conflicts(open_only=not args.all)
    except ClientError as error:
        if error.exit_code != 3:
            raise
        items = [c["detail"] for c in client.store.conflicts(open_only=not args.all)]
        items = [c for c in items if c]
        print("(offline: as last seen from the server)", file=sys.stderr)
    if not items:
        print("no open conflicts (无冲突)")
        return 0
    for c in items:
        state = f"resolved: {c['resolution']}" if c.get("resolved_at") else "open"
        print(
            f"conflict {c['id']}  {c['entity']} {c['entity_id']}  v{c['record_version']}  [{state}]"
        )
        for name, v in (c.get("values") or {}).items():
            mine = (
                "the change this device sent"
                if v.get("lost_side") == "device"
                else "the value that was on the server"
            )
            print(f"  {name}:")
            print(f"    kept (in the record now):  {_show(v.get('kept'))}")
            print(f"    set aside ({mine}):  {_show(v.get('lost'))}")
        if not c.get("resolved_at"):
            print(f"  resolve: fieldsync-device conflicts resolve {c['id']} --keep | --take-lost")
    return 0


def _resolve(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    conflict_id = args.conflict_id
    try:
        uuid.UUID(conflict_id)
    except ValueError:  # a prefix of one this device has listed
        ids = [c["id"] for c in client.store.conflicts() if c["id"].startswith(conflict_id)]
        if len(ids) != 1:
            raise ClientError(
                f"no single open conflict with id {conflict_id!r} on this device",
                hint="list them with `fieldsync-device conflicts`",
            ) from None
        conflict_id = ids[0]
    data = client.resolve(conflict_id, args.resolution, note=args.note)
    what = "kept the record as it is" if args.resolution == "keep" else "took the set-aside value"
    print(f"conflict {data['id']} resolved (已处理): {what}")
    summary = client.pull()
    _end_progress(client)
    print(f"  received {summary.changes} change(s)")
    return 0


def _quarantine(client: DeviceClient, args: argparse.Namespace) -> int:
    _signed_in(client)
    try:
        items = client.quarantine()
    except ClientError as error:
        if error.exit_code != 3:
            raise
        items = client.store.rejected()
        print("(offline: as this device recorded them)", file=sys.stderr)
    if not items:
        print("no rejected changes (无被拒绝的变更)")
        return 0
    for r in items:
        print(f"#{r['device_seq']} {r['type']} {r.get('entity_id') or ''}: {r['code']}")
        print(f"    {r.get('message') or ''} / {r.get('message_zh') or ''}")
    return 0


# --- helpers ----------------------------------------------------------------------------------


def _signed_in(client: DeviceClient) -> None:
    if not client.store.get("token"):
        raise NotSignedIn(
            "this device is not signed in (设备未登录)",
            hint="run `fieldsync-device login USERNAME` first",
        )


def _queued(client: DeviceClient) -> str:
    n = client.store.pending_count()
    photos = len(client.store.photos("pending"))
    also = f" and {photos} photo(s)" if photos else ""
    return f"{n} change(s){also} waiting to sync — run `fieldsync-device sync` when online"


def _known(client: DeviceClient, text: str) -> str:
    """A full inspection id, or an unambiguous prefix of one this device holds."""
    return _known_record(client, text, ("inspection",))[1]


def _known_record(
    client: DeviceClient, text: str, entities: Sequence[str] = ("inspection", "report")
) -> tuple[str, str]:
    """(entity, id) of the one record of `entities` on this device whose id is or starts with
    `text`."""
    try:
        prefix = str(uuid.UUID(text))
    except ValueError:
        prefix = text.lower()
    marks = ", ".join("?" * len(entities))
    rows = client.store.conn.execute(
        f"SELECT entity, id FROM records WHERE entity IN ({marks}) AND id LIKE ?",
        (*entities, prefix + "%"),
    ).fetchall()
    if len(rows) == 1:
        return str(rows[0]["entity"]), str(rows[0]["id"])
    if len(entities) == 1 and prefix != text.lower():  # a full id not (yet) on this device
        return entities[0], prefix
    kinds = " or ".join(entities)
    raise ClientError(
        f"no single {kinds} with id {text!r} on this device",
        hint="see `fieldsync-device inspect list`; run `fieldsync-device sync` to fetch new ones",
    )


def _officer_ids(client: DeviceClient, names: Sequence[str]) -> list[str]:
    """Officer ids from ids or usernames, looked up in the roster this device synced."""
    by_username = {
        data.get("username"): pid for pid, (_v, data) in client.store.records("person").items()
    }
    ids = []
    for name in names:
        try:
            ids.append(str(uuid.UUID(name)))
        except ValueError:
            if name not in by_username:
                raise ClientError(
                    f"unknown officer {name!r} (查无此人)",
                    hint="give an officer id or username of your street; "
                    "run `fieldsync-device sync` to fetch the roster",
                ) from None
            ids.append(by_username[name])
    return ids


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _ago(text: str | None) -> str:
    when = parse_time(text)
    if when is None:
        return "never"
    seconds = int((utcnow() - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{text} ({seconds // size} {unit} ago)"
    return f"{text} ({max(seconds, 0)} s ago)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
