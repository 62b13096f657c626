"""Real phone photos through tus, EXIF, derivatives, linking, review and download, seen from the
phone (sync pull) and from the back office (PROTOCOL.md §4, §4a)."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import PHOTOS, error_of
from PIL import Image
from test_upload_bad_input import Tus, empty_data_dir  # noqa: F401  (autouse fixture)

from fieldsync.jobs import make_derivatives
from fieldsync.sync.hlc import HLC

GPS_PHOTO = PHOTOS / "jpg_gps_DSCN0010.jpg"  # 2008-10-22 16:28:39, 43.467448 N 11.885127 E
HEIC = PHOTOS / "heic_mobile_iphone_13_pro_max.HEIC"


def sha256_of(path: Any) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Phone:
    """A device that pushes and pulls through the test client, and uploads with tus."""

    def __init__(self, api: Any, username: str) -> None:
        self.api = api
        self.device_id = str(uuid.uuid4())
        self.token = api.login(username, device_id=self.device_id)
        api.tokens[username] = self.token
        self.tus = Tus(api, username)
        self.seq = 0
        self.cursor: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def push(self, **mutation: Any) -> dict[str, Any]:
        self.seq += 1
        body = {
            "device_seq": self.seq,
            "mutation_id": str(uuid.uuid4()),
            "device_time": "2026-11-25T08:00:00Z",
            "hlc": str(HLC(1000 + self.seq, 0, self.device_id[:8])),
            **mutation,
        }
        resp = self.api.client.post(
            "/api/v1/sync/push",
            headers=self.headers(),
            json={"protocol": 1, "device_id": self.device_id, "mutations": [body]},
        )
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    def pull(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest data of every record that changed since the last pull."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        while True:
            query: dict[str, Any] = {"limit": 500}
            if self.cursor:
                query["cursor"] = self.cursor
            resp = self.api.client.get(
                "/api/v1/sync/pull", headers=self.headers(), query_string=query
            )
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            for change in body["changes"]:
                latest[(change["entity"], change["id"])] = change.get("data")
            self.cursor = body["cursor"]
            if not body["has_more"]:
                return latest

    def upload(self, path: Any, **meta: str) -> Any:
        return self.tus.upload(path.read_bytes(), **{"filename": path.name, **meta})


def derive(app: Any) -> int:
    return make_derivatives(app.extensions["fieldsync"])


def custody_actions(api: Any, who: str, sha: str) -> list[str]:
    resp = api.get(f"/evidence/{sha}/custody", who)
    assert resp.status_code == 200, resp.get_json()
    return [e["action"] for e in resp.get_json()]


@pytest.fixture
def phone(api: Any, demo: Any) -> Phone:
    return Phone(api, "cg_wang")


def new_inspection(phone: Phone, sha: str, location: dict[str, float]) -> str:
    iid = str(uuid.uuid4())
    result = phone.push(
        type="inspection.upsert",
        entity_id=iid,
        base_version=0,
        set={"matter_code": "CG-001", "location": location, "description": "摆摊"},
        add={"evidence": [sha]},
    )
    assert result["results"][0]["status"] == "applied", result
    assert result["missing_evidence"] == [sha]
    return iid


def test_gps_photo_named_before_upload(app: Any, api: Any, phone: Phone) -> None:
    sha = sha256_of(GPS_PHOTO)
    iid = new_inspection(phone, sha, {"lat": 43.4675, "lon": 11.8851})
    seen = phone.pull()
    assert seen[("inspection", iid)]["evidence_missing"] == [sha]

    resp = phone.upload(GPS_PHOTO, inspection_id=iid, captured_at="2008-10-22T08:29:00Z")
    assert resp.status_code == 204, resp.get_json()

    # the phone learns on its next pull that the photo arrived
    seen = phone.pull()
    assert seen[("inspection", iid)]["evidence_missing"] == []

    record = api.get(f"/evidence/{sha}", "reviewer_liang").get_json()
    assert record["sha256"] == record["declared_sha256"] == record["verified_sha256"] == sha
    assert record["content_type"] == "image/jpeg"
    assert record["exif_taken_at_local"] == "2008-10-22T16:28:39"
    assert record["exif_taken_at"].startswith("2008-10-22T08:28:39")  # assumed +08:00
    assert record["captured_at"].startswith("2008-10-22T08:29:00")
    assert record["lat"] == pytest.approx(43.467448, abs=1e-5)
    assert record["lon"] == pytest.approx(11.885127, abs=1e-5)
    assert (record["gcj02_lat"], record["gcj02_lon"]) == (record["lat"], record["lon"])  # Italy
    assert record["make"] == "NIKON" and "P6000" in record["model"]
    assert (record["width"], record["height"]) == (640, 480)
    assert record["flags"] == []  # time within 30 min, place within 500 m
    assert record["review_state"] == "pending"
    assert record["links"] == [{"entity": "inspection", "id": iid}]
    assert record["derivatives"] == {}
    assert api.get(f"/evidence/{sha}/thumbnail", "reviewer_liang").status_code == 404

    assert derive(app) == 1
    assert derive(app) == 0  # nothing left to do
    record = api.get(f"/evidence/{sha}", "reviewer_liang").get_json()
    assert set(record["derivatives"]) == {"thumbnail", "display"}
    assert record["derivatives"]["display"]["parent_sha256"] == sha

    thumb = api.get(f"/evidence/{sha}/thumbnail", "cg_wang")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert hashlib.sha256(thumb.data).hexdigest() == record["derivatives"]["thumbnail"]["sha256"]
    with Image.open(io.BytesIO(thumb.data)) as im:
        assert max(im.size) == 320 and im.size[0] > im.size[1]
    display = api.get(f"/evidence/{sha}/display", "reviewer_liang")
    assert display.status_code == 200
    assert display.headers["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(display.data)) as im:
        exif = im.getexif()
        assert 0x8825 not in exif and not exif.get_ifd(0x8825)  # no GPS
        assert len(exif) == 0
        assert im.size == (640, 480)
    assert b"NIKON" not in display.data

    actions = custody_actions(api, "reviewer_liang", sha)
    assert [a for a in actions if a != "viewed"] == ["captured", "uploaded", "verified", "derived"]
    # the reviewer's two looks at the record and one at the display copy; no officer's
    assert actions.count("viewed") == 3


def test_discrepancies_are_flagged(app: Any, api: Any, phone: Phone) -> None:
    sha = sha256_of(GPS_PHOTO)
    # the inspection says Beijing; the photo says Tuscany; the device clock says 2026
    iid = new_inspection(phone, sha, {"lat": 39.9139, "lon": 116.3917})
    resp = phone.upload(GPS_PHOTO, inspection_id=iid, captured_at="2026-11-25T08:00:00Z")
    assert resp.status_code == 204
    record = api.get(f"/evidence/{sha}", "captain").get_json()
    codes = {f["code"] for f in record["flags"]}
    assert codes == {"evidence.time_mismatch", "evidence.position_mismatch"}
    position = next(f for f in record["flags"] if f["code"] == "evidence.position_mismatch")
    assert position["params"]["distance_m"] > 7_000_000
    assert position["params"]["id"] == iid
    assert "米" in position["message_zh"]


def test_position_is_checked_whichever_arrives_first(app: Any, api: Any, phone: Phone) -> None:
    """The photo (taken in Tuscany) arrives first; then an inspection in Beijing names it: the
    position flag comes then. When the inspection moves to the photo's place, it goes."""
    sha = sha256_of(GPS_PHOTO)
    assert phone.upload(GPS_PHOTO).status_code == 204
    assert api.get(f"/evidence/{sha}", "captain").get_json()["flags"] == []

    iid = str(uuid.uuid4())
    result = phone.push(
        type="inspection.upsert",
        entity_id=iid,
        base_version=0,
        set={"matter_code": "CG-001", "location": {"lat": 39.9139, "lon": 116.3917}},
        add={"evidence": [sha]},
    )
    assert result["missing_evidence"] == []
    flags = api.get(f"/evidence/{sha}", "captain").get_json()["flags"]
    assert [(f["code"], f["params"]["id"]) for f in flags] == [("evidence.position_mismatch", iid)]

    tuscany = {"lat": 43.4674, "lon": 11.8851}  # the photo's own EXIF position, to 10 m
    result = phone.push(
        type="inspection.upsert",
        entity_id=iid,
        base_version=result["results"][0]["version"],
        set={"location": tuscany},
    )
    assert result["results"][0]["status"] == "applied", result
    assert api.get(f"/evidence/{sha}", "captain").get_json()["flags"] == []


def test_heic_and_orientation(app: Any, api: Any, phone: Phone) -> None:
    assert phone.upload(HEIC).status_code == 204
    sha = sha256_of(HEIC)
    record = api.get(f"/evidence/{sha}", "reviewer_liang").get_json()
    assert record["content_type"] == "image/heic"
    assert (record["make"], record["model"]) == ("Apple", "iPhone 13 Pro Max")
    assert record["exif_taken_at_local"] == "2022-02-16T12:55:41"
    assert (record["width"], record["height"]) == (3024, 4032)
    assert record["lat"] is None

    sizes = {}
    for name in (
        "jpg_orientation_landscape_3.jpg",
        "jpg_orientation_landscape_6.jpg",
        "jpg_orientation_portrait_8.jpg",
    ):
        path = PHOTOS / name
        assert phone.upload(path).status_code == 204
        sizes[sha256_of(path)] = name
    assert derive(app) == 4
    for digest in [sha, *sizes]:
        record = api.get(f"/evidence/{digest}", "reviewer_liang").get_json()
        thumb = api.get(f"/evidence/{digest}/thumbnail", "reviewer_liang")
        with Image.open(io.BytesIO(thumb.data)) as im:
            # upright: the thumbnail has the record's (displayed) aspect
            assert (im.size[0] > im.size[1]) == (record["width"] > record["height"]), digest
        actions = custody_actions(api, "reviewer_liang", digest)
        assert [a for a in actions if a != "viewed"] == [
            "captured",
            "uploaded",
            "verified",
            "derived",
        ]
        original = api.get(f"/evidence/{digest}/original", "reviewer_liang")
        assert hashlib.sha256(original.data).hexdigest() == digest  # never modified


def test_review_reaches_the_device(app: Any, api: Any, phone: Phone) -> None:
    sha = sha256_of(GPS_PHOTO)
    iid = new_inspection(phone, sha, {"lat": 43.4675, "lon": 11.8851})
    assert phone.upload(GPS_PHOTO).status_code == 204
    phone.pull()

    queue = api.get("/evidence?review_state=pending", "reviewer_liang")
    assert [e["sha256"] for e in queue.get_json()] == [sha]
    assert '"total": 1' in queue.headers["X-Pagination"]

    resp = api.post(f"/evidence/{sha}/review", "reviewer_liang", json={"decision": "reject"})
    assert resp.status_code == 422 and error_of(resp) == "evidence.reason_required"
    resp = api.post(f"/evidence/{sha}/review", "cg_liu", json={"decision": "accept"})
    assert resp.status_code == 403
    resp = api.post(
        f"/evidence/{sha}/review",
        "reviewer_liang",
        json={"decision": "reject", "reason": "照片模糊，看不清摊位"},
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["review_state"] == "rejected"
    data = phone.pull()[("inspection", iid)]
    assert data["evidence_review"][sha]["state"] == "rejected"
    assert data["evidence_review"][sha]["reason"] == "照片模糊，看不清摊位"
    assert api.get("/evidence?review_state=pending", "reviewer_liang").get_json() == []

    resp = api.post(f"/evidence/{sha}/review", "captain", json={"decision": "accept"})
    assert resp.status_code == 200
    data = phone.pull()[("inspection", iid)]
    assert data["evidence_review"][sha]["state"] == "accepted"
    actions = custody_actions(api, "captain", sha)
    assert actions.count("reviewed") == 2


def test_report_by_a_grid_worker(app: Any, api: Any, demo: Any) -> None:
    worker = Phone(api, "grid_duofu1")
    sha = sha256_of(GPS_PHOTO)
    rid = str(uuid.uuid4())
    result = worker.push(
        type="report.upsert",
        entity_id=rid,
        base_version=0,
        set={"description": "占道经营"},
        add={"evidence": [sha]},
    )
    assert result["missing_evidence"] == [sha]
    assert worker.upload(GPS_PHOTO).status_code == 204
    assert worker.pull()[("report", rid)]["evidence_missing"] == []
    # the uploader may fetch their own original
    assert api.get(f"/evidence/{sha}/original", "grid_duofu1").status_code == 200


def test_download_original(app: Any, api: Any, phone: Phone) -> None:
    sha = sha256_of(GPS_PHOTO)
    assert phone.upload(GPS_PHOTO, filename="现场 照片.jpg").status_code == 204
    resp = api.get(f"/evidence/{sha}/original", "handler_chengguan")
    assert resp.status_code == 200
    assert resp.data == GPS_PHOTO.read_bytes()
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"].startswith(f'attachment; filename="{sha}.jpg"')
    assert "filename*=UTF-8''" in resp.headers["Content-Disposition"]
    assert resp.mimetype == "image/jpeg"
    assert int(resp.headers["Content-Length"]) == GPS_PHOTO.stat().st_size

    # a HEAD transfers nothing: not a download
    head = api.request("HEAD", f"/evidence/{sha}/original", "handler_chengguan")
    assert head.status_code == 200
    custody = api.get(f"/evidence/{sha}/custody", "captain").get_json()
    downloaded = [e for e in custody if e["action"] == "downloaded"]
    assert len(downloaded) == 1
    assert downloaded[0]["person_id"] is not None
    assert downloaded[0]["remote_addr"] == "127.0.0.1"

    # a grid worker or an officer who did not take it may not; another street does not see it
    for who, status in (("grid_duofu1", 403), ("cg_liu", 403), ("js_cg_xu", 404)):
        resp = api.get(f"/evidence/{sha}/original", who)
        assert resp.status_code == status, who
    assert api.get(f"/evidence/{sha}", "js_cg_xu").status_code == 404
    assert api.get(f"/evidence/{sha}", "grid_duofu1").status_code == 404
    custody = api.get(f"/evidence/{sha}/custody", "captain").get_json()
    assert [e["action"] for e in custody].count("downloaded") == 1


def test_same_photo_from_two_devices_is_stored_once(app: Any, api: Any, phone: Phone) -> None:
    data = GPS_PHOTO.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert phone.upload(GPS_PHOTO).status_code == 204
    other = Phone(api, "cg_liu")
    created = other.tus.create(len(data), sha, filename="copy.jpg")
    assert created.status_code == 201
    assert created.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" not in created.headers
    head = other.tus.head(created.headers["Location"])
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
    assert len(api.get("/evidence", "captain").get_json()) == 1
    uploads = [e for e in api.get(f"/evidence/{sha}/custody", "captain").get_json()]
    assert [e["details"].get("deduplicated") for e in uploads if e["action"] == "uploaded"] == [
        None,
        True,
    ]
    # a length that cannot have that hash is refused
    resp = other.tus.create(len(data) + 1, sha)
    assert resp.status_code == 422 and error_of(resp) == "upload.hash_mismatch"


def test_each_street_holds_its_own_evidence_of_the_same_bytes(
    app: Any, api: Any, demo: Any
) -> None:
    """Street A holds a photo; street B's officer names the same bytes. B learns nothing of A's
    copy: B's record says the photo is missing, B must send the bytes itself, and each street
    then has its own evidence — custody, review — while the bytes are stored once."""
    a, b = Phone(api, "cg_wang"), Phone(api, "js_cg_xu")
    sha = sha256_of(GPS_PHOTO)
    assert a.upload(GPS_PHOTO).status_code == 204
    located = {"lat": 39.91, "lon": 116.40}

    b_inspection = new_inspection(b, sha, located)  # asserts missing_evidence == [sha]
    assert b.pull()[("inspection", b_inspection)]["evidence_missing"] == [sha]
    assert api.get(f"/evidence/{sha}", "js_cg_xu").status_code == 404

    created = b.tus.create(GPS_PHOTO.stat().st_size, sha)
    assert created.status_code == 201
    assert created.headers["Upload-Offset"] == "0"  # no "already have it" for another street
    assert b.tus.patch(created.headers["Location"], 0, GPS_PHOTO.read_bytes()).status_code == 204
    assert b.pull()[("inspection", b_inspection)]["evidence_missing"] == []

    mine = api.get(f"/evidence/{sha}", "js_cg_xu").get_json()
    assert mine["uploaded_by_id"] == b.api.get("/auth/me", "js_cg_xu").get_json()["id"]
    assert mine["links"] == [{"entity": "inspection", "id": b_inspection}]
    theirs = api.get(f"/evidence/{sha}", "reviewer_liang").get_json()
    assert theirs["links"] == []
    assert theirs["uploaded_by_id"] != mine["uploaded_by_id"]
    b_people = {e["person_id"] for e in api.get(f"/evidence/{sha}/custody", "js_cg_xu").get_json()}
    a_people = {e["person_id"] for e in api.get(f"/evidence/{sha}/custody", "captain").get_json()}
    assert mine["uploaded_by_id"] not in a_people
    assert theirs["uploaded_by_id"] not in b_people

    # street A's review stays street A's
    resp = api.post(f"/evidence/{sha}/review", "reviewer_liang", json={"decision": "accept"})
    assert resp.status_code == 200
    assert api.get(f"/evidence/{sha}", "js_cg_xu").get_json()["review_state"] == "pending"
    assert b.pull().get(("inspection", b_inspection)) is None  # nothing changed for B

    blobs = Path(app.extensions["fieldsync"].config.data_dir) / "blobs"
    assert [p.name for p in blobs.rglob("*") if p.is_file()] == [sha]  # stored once


def test_custody_records_the_client_behind_a_trusted_proxy(
    app: Any, api: Any, phone: Phone, test_config: Any
) -> None:
    import dataclasses

    from conftest import ApiClient

    from fieldsync import create_app

    sha = sha256_of(GPS_PHOTO)
    assert phone.upload(GPS_PHOTO).status_code == 204
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    # without a trusted proxy the header is not believed
    assert api.get(f"/evidence/{sha}/original", "captain", headers=forwarded).status_code == 200
    proxied_app = create_app(dataclasses.replace(test_config, trusted_proxies=1))
    try:
        proxied = ApiClient(proxied_app)
        resp = proxied.get(f"/evidence/{sha}/original", "captain", headers=forwarded)
        assert resp.status_code == 200
    finally:
        proxied_app.extensions["fieldsync"].engine.dispose()
    custody = api.get(f"/evidence/{sha}/custody", "captain").get_json()
    downloads = [e["remote_addr"] for e in custody if e["action"] == "downloaded"]
    assert downloads == ["127.0.0.1", "203.0.113.7"]


def test_a_photo_that_keeps_failing_waits_and_does_not_hold_up_newer_ones(
    app: Any, api: Any, phone: Phone
) -> None:
    from datetime import timedelta

    from fieldsync.clock import utcnow
    from fieldsync.evidence.derivatives import make_derivatives as derive_at

    services = app.extensions["fieldsync"]
    store = services.extras["blobstore"]
    older, newer = PHOTOS / "jpg_gps_DSCN0012.jpg", PHOTOS / "jpg_gps_DSCN0021.jpg"
    for path in (older, newer):
        iid = new_inspection(phone, sha256_of(path), {"lat": 43.4675, "lon": 11.8851})
        assert phone.upload(path, inspection_id=iid).status_code == 204
    # the older photo's bytes cannot be read (a store outage, a lost file): not a bad photo
    original = store.open(sha256_of(older)).read()
    assert store.delete(sha256_of(older))
    now = utcnow()

    def run(at: Any) -> int:
        return derive_at(
            services.sessionmaker, store=store, config=services.config, limit=1, now=lambda: at
        )

    assert run(now) == 0  # the older one first, and it fails
    assert run(now) == 1  # it waits; the newer one is done
    assert set(
        api.get(f"/evidence/{sha256_of(newer)}", "reviewer_liang").get_json()["derivatives"]
    ) == {
        "thumbnail",
        "display",
    }
    assert run(now + timedelta(seconds=59)) == 0  # still waiting: nothing else to do
    failing = api.get(f"/evidence/{sha256_of(older)}", "reviewer_liang").get_json()
    assert failing["derivative_attempts"] == 1 and failing["derivatives"] == {}
    assert failing["derivatives_retry_at"] is not None

    assert run(now + timedelta(minutes=1)) == 0  # tried again, fails again
    assert run(now + timedelta(minutes=2)) == 0  # the second wait is twice as long
    store.put_stream(sha256_of(older), io.BytesIO(original))
    assert run(now + timedelta(minutes=3)) == 1
    record = api.get(f"/evidence/{sha256_of(older)}", "reviewer_liang").get_json()
    assert set(record["derivatives"]) == {"thumbnail", "display"}
