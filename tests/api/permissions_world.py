"""Real objects in both demo streets for test_permissions, made through the public API only:
users of every role in each street, an inspection pushed and submitted (flagged, diverted to a
case, with a real photo uploaded by tus), cases in every state, a conflict, a rejected mutation,
an upload in progress, a grid worker's submitted report. Every id a street's objects have is
one of its leak markers."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import PHOTOS  # type: ignore[import-not-found]

from fieldsync.demo import STREET_A_CODE, STREET_B_CODE, demo_uuid, password_for
from fieldsync.sync.hlc import HLC

STREETS = ("A", "B")
# the callers of each role; 景山 has no dispatcher or reviewer in the demo: made by its admin
CALLERS = {
    "A": {
        "officer": "cg_wang",
        "grid_worker": "grid_duofu1",
        "dispatcher": "dispatcher",
        "case_handler": "handler_chengguan",
        "reviewer": "reviewer_liang",
        "captain": "captain",
        "admin": "admin",
    },
    "B": {
        "officer": "js_cg_xu",
        "grid_worker": "js_grid_jixiang1",
        "dispatcher": "js_dispatcher",
        "case_handler": "js_handler_chengguan",
        "reviewer": "js_reviewer",
        "captain": "js_captain",
        "admin": "admin_jingshan",
    },
}
MADE_BY_ADMIN = {"js_dispatcher": "dispatcher", "js_reviewer": "reviewer"}
SECOND_OFFICER = {"A": "cg_liu", "B": "js_cg_deng"}
STREET_CODE = {"A": STREET_A_CODE, "B": STREET_B_CODE}
EVIDENCE_PHOTO = {"A": PHOTOS / "jpg_gps_DSCN0010.jpg", "B": PHOTOS / "jpg_gps_DSCN0012.jpg"}
UPLOADING_PHOTO = {
    "A": PHOTOS / "jpg_gps_DSCN0021.jpg",
    "B": PHOTOS / "jpg_orientation_landscape_6.jpg",
}
CASE_STATES = ("awaiting_filing", "filed", "concluded")
TUS = {"Tus-Resumable": "1.0.0"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def upload_headers(path: Path, **meta: str) -> dict[str, str]:
    data = path.read_bytes()
    pairs = {"sha256": hashlib.sha256(data).hexdigest(), "filename": path.name, **meta}
    return {
        **TUS,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": ",".join(f"{k} {b64(v)}" for k, v in pairs.items()),
    }


@dataclass
class Caller:
    """A signed-in user on one device of their own."""

    username: str
    street: str
    token: str
    device_id: str
    seq: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Street:
    """One street's callers and objects; `ids` maps a path parameter (or a named variant of
    one, e.g. case_id:filed) to the object's id."""

    name: str
    callers: dict[str, Caller] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)

    def keep(self, key: str, value: str) -> str:
        self.ids[key] = value
        self.markers.add(value)
        return value


class World:
    """Both streets, built through the API; `renew(street, key)` makes a fresh object for a
    key whose object a successful call used up (a revoked certificate, a filed case …)."""

    def __init__(self, client: Any, derive: Callable[[], int]) -> None:
        self.client = client
        self.streets = {name: Street(name) for name in STREETS}
        self.clock = 1_000_000  # one HLC for every device here: a later push is a later edit
        for name in STREETS:
            self._build(self.streets[name])
        assert derive() == len(STREETS)  # thumbnails and display copies of both photos
        for street in self.streets.values():
            reviewer = street.callers["reviewer"]
            record = self.ok(reviewer, "GET", f"/evidence/{street.ids['sha256']}").get_json()
            street.markers.update(d["sha256"] for d in record["derivatives"].values())

    # --- requests ---------------------------------------------------------------------------

    def call(self, caller: Caller | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**(caller.headers if caller else {}), **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def ok(self, caller: Caller, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.call(caller, method, "/api/v1" + path, **kwargs)
        assert 200 <= resp.status_code < 300, (method, path, resp.status_code, resp.get_data())
        return resp

    def sign_in(self, username: str, street: str) -> Caller:
        device_id = str(uuid.uuid4())
        resp = self.client.post(
            "/api/v1/auth/devices",
            json={
                "username": username,
                "password": password_for(username),
                "device_id": device_id,
                "device_name": f"{username}'s phone",
            },
        )
        assert resp.status_code == 201, resp.get_json()
        caller = Caller(username, street, resp.get_json()["token"], device_id)
        self.streets[street].markers.add(device_id)
        return caller

    def push(self, caller: Caller, **mutation: Any) -> dict[str, Any]:
        caller.seq += 1
        self.clock += 1000
        body = {
            "device_seq": caller.seq,
            "mutation_id": str(uuid.uuid4()),
            "device_time": "2026-11-25T08:00:00Z",
            "hlc": str(HLC(self.clock, 0, caller.device_id[:8])),
            **mutation,
        }
        self.streets[caller.street].markers.add(mutation["entity_id"])
        resp = self.ok(
            caller,
            "POST",
            "/sync/push",
            json={"protocol": 1, "device_id": caller.device_id, "mutations": [body]},
        )
        return {**resp.get_json()["results"][0], "mutation_id": body["mutation_id"]}

    # --- objects ----------------------------------------------------------------------------

    def _build(self, street: Street) -> None:
        s = street.name
        admin = self.sign_in(CALLERS[s]["admin"], s)
        for username, role in MADE_BY_ADMIN.items():
            if username in CALLERS[s].values():
                body = {
                    "username": username,
                    "password": password_for(username),
                    "full_name": username,
                    "roles": [role],
                }
                made = self.ok(admin, "POST", "/officers", json=body).get_json()
                street.markers.add(made["id"])
        street.callers = {
            role: admin if username == admin.username else self.sign_in(username, s)
            for role, username in CALLERS[s].items()
        }
        street.keep("street", str(demo_uuid("street", STREET_CODE[s])))
        # the whole roster, its certificates and the street's communities and grids
        for person in self.ok(admin, "GET", "/officers").get_json():
            street.markers.add(person["id"])
            street.markers.update(c["id"] for c in person["certificates"])
            street.markers.update(i for i in (person["team_id"], person["grid_id"]) if i)
        for grid in self.ok(admin, "GET", "/grids").get_json():
            street.markers.update((grid["id"], grid["community_id"]))
        second = SECOND_OFFICER[s]
        street.keep("person_id", str(demo_uuid("person", second)))
        street.keep("device_id", self.sign_in(second, s).device_id)
        self.renew(street, "certificate_id")

        officer = street.callers["officer"]
        photo = EVIDENCE_PHOTO[s]
        sha = street.keep("sha256", hashlib.sha256(photo.read_bytes()).hexdigest())
        self.renew(street, "inspection_id", evidence=[sha])
        created = self.ok(
            officer,
            "POST",
            "/uploads",
            headers=upload_headers(photo, inspection_id=street.ids["inspection_id"]),
        )
        self.ok(
            officer,
            "PATCH",
            created.headers["Location"].removeprefix("/api/v1"),
            headers={
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
            data=photo.read_bytes(),
        )
        street.keep("upload:done", created.headers["Location"].rsplit("/", 1)[1])
        self.renew(street, "upload_id")
        self.renew(street, "conflict_id")
        self.renew(street, "report_id")
        for state in CASE_STATES:
            self.renew(street, f"case_id:{state}")
        # a rejected mutation, in the quarantine
        rejected = self.push(
            officer,
            type="inspection.upsert",
            entity_id=str(uuid.uuid4()),
            base_version=0,
            set={"matter_code": "XX-999"},
        )
        assert rejected["status"] == "rejected", rejected
        street.keep("quarantined", rejected["mutation_id"])
        street.keep("quarantined_entity", rejected["id"])

    def renew(self, street: Street, key: str, **options: Any) -> None:
        s = street.name
        officer, admin = street.callers["officer"], street.callers["admin"]
        person = demo_uuid("person", SECOND_OFFICER[s])
        if key == "certificate_id":
            body = {
                "number": f"MATRIX-{s}-{uuid.uuid4().hex[:8]}",
                "valid_from": "2026-01-01T00:00:00Z",
                "valid_to": "2030-01-01T00:00:00Z",
            }
            made = self.ok(admin, "POST", f"/officers/{person}/certificates", json=body)
            street.keep(key, made.get_json()["id"])
        elif key == "inspection_id":
            # a lone officer's seizure: flagged for the captain, then submitted and diverted
            street.keep(key, self._inspection(street, seizure=True, **options))
        elif key == "upload_id":
            created = self.ok(
                officer, "POST", "/uploads", headers=upload_headers(UPLOADING_PHOTO[s])
            )
            street.keep(key, created.headers["Location"].rsplit("/", 1)[1])
        elif key == "conflict_id":
            street.keep(key, self._conflict(street))
        elif key == "report_id":
            street.keep(key, self._report(street))
        elif key.startswith("case_id:"):
            street.keep(key, self._case(street, key.split(":")[1]))
        else:
            raise KeyError(key)

    def _inspection(
        self, street: Street, *, seizure: bool = False, evidence: list[str] | None = None
    ) -> str:
        officer = street.callers["officer"]
        iid, finding = str(uuid.uuid4()), str(uuid.uuid4())
        measures = []
        if seizure:
            items = [{"item": "三轮车", "quantity": 1, "unit": "辆"}]
            measures = [
                {
                    "id": str(uuid.uuid4()),
                    "type": "seizure",
                    "finding_id": finding,
                    "details": {"items": items, "receipt_no": "Z-1"},
                }
            ]
        upsert = self.push(
            officer,
            type="inspection.upsert",
            entity_id=iid,
            base_version=0,
            set={
                "matter_code": "CG-001",
                "occurred_at": "2026-11-20T02:00:00Z",
                "present": [str(demo_uuid("person", officer.username))],
                "findings": [{"id": finding, "matter_code": "CG-001", "description": "占道"}],
                "measures": measures,
                "evidence": evidence or [],
            },
        )
        assert upsert["status"] == "applied", upsert
        submit = self.push(officer, type="inspection.submit", entity_id=iid, base_version=1)
        assert submit["status"] == "applied", submit
        assert submit["data"]["status"] == "diverted", submit
        street.markers.update(c["id"] for c in submit["data"]["cases"])
        street.ids.setdefault("case_id", submit["data"]["cases"][0]["id"])
        return iid

    def _report(self, street: Street) -> str:
        """A problem the street's grid worker reported and submitted (theirs to deal with)."""
        grid_worker = street.callers["grid_worker"]
        rid, description = str(uuid.uuid4()), f"矩阵上报 {street.name}-{uuid.uuid4().hex[:6]}"
        made = self.push(
            grid_worker,
            type="report.upsert",
            entity_id=rid,
            base_version=0,
            set={"description": street.keep("report:description", description)},
        )
        assert made["status"] == "applied", made
        done = self.push(grid_worker, type="report.submit", entity_id=rid, base_version=1)
        assert done["data"]["status"] == "submitted", done
        return rid

    def _case(self, street: Street, state: str) -> str:
        handler = street.callers["case_handler"]
        iid = self._inspection(street)
        case_id = self.ok(
            street.callers["captain"], "GET", "/cases", query_string={"inspection_id": iid}
        ).get_json()[0]["id"]
        if state in ("filed", "concluded"):
            self.ok(handler, "POST", f"/cases/{case_id}/file", json={})
        if state == "concluded":
            body = {"decision": "责令改正", "summary": "已整改"}
            self.ok(handler, "POST", f"/cases/{case_id}/conclude", json=body)
        return case_id

    def _conflict(self, street: Street) -> str:
        """The second officer records a draft and edits it; the officer's edit of the same field,
        based on the first version, is the officer's conflict."""
        officer = street.callers["officer"]
        second = self.sign_in(SECOND_OFFICER[street.name], street.name)
        iid = str(uuid.uuid4())
        set_ = {"matter_code": "CG-001", "description": "first"}
        self.push(second, type="inspection.upsert", entity_id=iid, base_version=0, set=set_)
        self.push(
            second,
            type="inspection.upsert",
            entity_id=iid,
            base_version=1,
            set={"description": "second"},
        )
        lost = self.push(
            officer,
            type="inspection.upsert",
            entity_id=iid,
            base_version=1,
            set={"description": "stale"},
        )
        assert lost["status"] == "conflict", lost
        street.markers.add(iid)
        return str(lost["conflict_id"])
