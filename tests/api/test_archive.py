"""Archive immutability of an archived case's materials (留存备查): its photo, the photo's links and
custody, the case's officers — refused through the API, through sync, through the ORM and in
SQL that bypasses both; only a derivative made from nothing may still be recorded."""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Any

import pytest
from conftest import PHOTOS
from field_phone import Device, new_id, pid  # type: ignore[import-not-found]
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from test_upload_bad_input import Tus, empty_data_dir  # noqa: F401  (autouse fixture)

from fieldsync.errors import DomainError
from fieldsync.evidence.models import CustodyEvent, Evidence, EvidenceLink
from fieldsync.jobs import make_derivatives

PHOTO = PHOTOS / "jpg_gps_DSCN0010.jpg"  # named by the archived case's inspection
OTHER = PHOTOS / "jpg_gps_DSCN0012.jpg"  # named by nothing sealed


def _upload(api: Any, who: str, path: Any) -> str:
    data = path.read_bytes()
    resp = Tus(api, who).upload(data, filename=path.name)
    assert resp.status_code == 204, resp.get_json()
    return hashlib.sha256(data).hexdigest()


def _db_id(engine: Any, value: str) -> Any:
    # SQLAlchemy's Uuid stores 32 hex digits on SQLite, a native uuid on PostgreSQL
    return uuid.UUID(value).hex if engine.dialect.name == "sqlite" else uuid.UUID(value)


@pytest.fixture
def archived(api: Any, demo: Any) -> dict[str, Any]:
    """An inspection naming PHOTO, its case filed, concluded and archived by the captain."""
    phone = Device(api, "cg_wang")
    photo, other = _upload(api, "cg_wang", PHOTO), _upload(api, "cg_wang", OTHER)
    iid = new_id()
    resp = phone.push(
        {
            "type": "inspection.upsert",
            "entity_id": iid,
            "base_version": 0,
            "set": {
                "matter_code": "CG-001",
                "occurred_at": "2026-11-20T02:00:00Z",
                "present": [pid("cg_wang"), pid("cg_liu")],
                "evidence": [photo],
            },
        },
        {"type": "inspection.submit", "entity_id": iid, "base_version": 1},
    )
    assert resp.status_code == 200, resp.get_json()
    (case,) = resp.get_json()["results"][1]["data"]["cases"]
    for action, who, body in (
        ("file", "handler_chengguan", {}),
        ("conclude", "handler_chengguan", {"decision": "罚款200元", "summary": "已整改"}),
        ("archive", "captain", {}),
    ):
        done = api.post(f"/cases/{case['id']}/{action}", who, json=body)
        assert done.status_code == 200, done.get_json()
    return {"phone": phone, "inspection": iid, "case": case["id"], "photo": photo, "other": other}


def test_reviewing_an_archived_cases_photo_is_refused(api: Any, archived: dict[str, Any]) -> None:
    photo = archived["photo"]
    custody = api.get(f"/evidence/{photo}/custody", "reviewer_liang").get_json()
    for decision, reason in (("accept", None), ("reject", "模糊"), ("more_needed", "补拍")):
        resp = api.post(
            f"/evidence/{photo}/review",
            "reviewer_liang",
            json={"decision": decision, "reason": reason},
        )
        assert (resp.status_code, resp.get_json()["error"]) == (409, "evidence.archived")
    record = api.get(f"/evidence/{photo}", "captain").get_json()
    assert (record["review_state"], record["reviewed_at"]) == ("pending", None)
    after = api.get(f"/evidence/{photo}/custody", "reviewer_liang").get_json()
    assert [e["action"] for e in after] == [e["action"] for e in custody] + ["viewed"]
    # a photo no sealed inspection names is reviewed as ever
    other = api.post(
        f"/evidence/{archived['other']}/review", "reviewer_liang", json={"decision": "accept"}
    )
    assert other.status_code == 200, other.get_json()


def test_through_sync_the_sealed_inspection_keeps_its_photo(
    api: Any, archived: dict[str, Any], app: Any
) -> None:
    phone, iid, photo = archived["phone"], archived["inspection"], archived["photo"]
    version = api.get(f"/inspections/{iid}", "captain").get_json()["version"]
    removed = phone.push_one(
        type="inspection.upsert", entity_id=iid, base_version=version, remove={"evidence": [photo]}
    )
    assert (removed["status"], removed["code"]) == ("rejected", "inspection.archived")
    with app.extensions["fieldsync"].sessionmaker() as s:
        assert s.get(EvidenceLink, (photo, "inspection", uuid.UUID(iid))) is not None
    # another inspection may name the same photo; the photo stays archived
    again = phone.push_one(
        type="inspection.upsert",
        entity_id=new_id(),
        base_version=0,
        set={"matter_code": "CG-001", "evidence": [photo]},
    )
    assert again["status"] == "applied", again
    refused = api.post(f"/evidence/{photo}/review", "captain", json={"decision": "accept"})
    assert refused.get_json()["error"] == "evidence.archived"
    assert api.get(f"/inspections/{iid}", "captain").get_json()["evidence"] == [photo]


def test_a_thumbnail_made_after_archive_is_recorded_once(
    api: Any, archived: dict[str, Any], app: Any
) -> None:
    assert make_derivatives(app.extensions["fieldsync"]) == 2  # from nothing: allowed
    record = api.get(f"/evidence/{archived['photo']}", "captain").get_json()
    assert set(record["derivatives"]) == {"thumbnail", "display"}
    assert api.get(f"/evidence/{archived['photo']}/thumbnail", "captain").status_code == 200
    engine = app.extensions["fieldsync"].engine
    for column in ("thumbnail_sha256", "display_sha256"):
        with pytest.raises(DBAPIError, match="evidence of an archived case"), engine.begin() as c:
            c.execute(
                text(f"UPDATE evidence SET {column} = :v WHERE sha256 = :s"),
                {"v": "0" * 64, "s": archived["photo"]},
            )
    with pytest.raises(DBAPIError, match="evidence of an archived case"), engine.begin() as c:
        c.execute(
            text("UPDATE evidence SET derivatives_at = NULL WHERE sha256 = :s"),
            {"s": archived["photo"]},
        )
    assert api.get(f"/evidence/{archived['photo']}", "captain").get_json() == record


def test_sql_that_bypasses_the_orm_is_refused(archived: dict[str, Any], app: Any) -> None:
    engine = app.extensions["fieldsync"].engine
    photo, other = archived["photo"], archived["other"]
    case_id = _db_id(engine, archived["case"])
    inspection_id = _db_id(engine, archived["inspection"])
    refused = [
        ("UPDATE evidence SET review_state = 'accepted' WHERE sha256 = :s", "archived case"),
        ("UPDATE evidence SET size = size + 1 WHERE sha256 = :s", "archived case"),
        ("DELETE FROM evidence WHERE sha256 = :s", "archived case"),
        ("UPDATE evidence_custody SET action = 'x' WHERE sha256 = :s", "only ever added to"),
        ("DELETE FROM evidence_custody WHERE sha256 = :s", "only ever added to"),
        ("DELETE FROM evidence_custody WHERE sha256 = :o", "only ever added to"),
        ("UPDATE evidence_custody SET details = '{}' WHERE sha256 = :o", "only ever added to"),
        ("DELETE FROM evidence_links WHERE sha256 = :s", "sealed inspection"),
        ("UPDATE evidence_links SET sha256 = :o WHERE sha256 = :s", "sealed inspection"),
        ("DELETE FROM case_officers WHERE case_id = :c", "archived case never changes"),
        ("UPDATE case_officers SET person_id = person_id WHERE case_id = :c", "archived case"),
        (
            "INSERT INTO case_officers (case_id, person_id) SELECT :c, id FROM people "
            "WHERE username = 'cg_chen'",
            "archived case never changes",
        ),
    ]
    params = {"s": photo, "o": other, "c": case_id, "i": inspection_id}
    for sql, message in refused:
        with pytest.raises(DBAPIError, match=message), engine.begin() as conn:
            conn.execute(text(sql), params)
    # what no sealed inspection holds still changes: another photo's record, new custody
    with engine.begin() as conn:
        assert (
            conn.execute(
                text("UPDATE evidence SET review_state = 'accepted' WHERE sha256 = :o"), params
            ).rowcount
            == 1
        )
        conn.execute(
            text(
                "INSERT INTO evidence_custody (street_id, sha256, action, at, details) "
                "SELECT street_id, sha256, 'viewed', CURRENT_TIMESTAMP, '{}' FROM evidence "
                "WHERE sha256 = :s"
            ),
            params,
        )
    with engine.connect() as conn:
        state = conn.execute(text("SELECT review_state FROM evidence WHERE sha256 = :s"), params)
        assert state.scalar_one() == "pending"


def _evidence(session: Any, sha256: str) -> Any:
    return session.scalars(select(Evidence).where(Evidence.sha256 == sha256)).one()


def test_the_orm_guard_agrees(archived: dict[str, Any], app: Any) -> None:
    sessionmaker = app.extensions["fieldsync"].sessionmaker
    attempts = [
        (
            lambda s: setattr(_evidence(s, archived["photo"]), "review_note", "x"),
            "evidence.archived",
        ),
        (lambda s: s.delete(_evidence(s, archived["photo"])), "evidence.archived"),
        (
            lambda s: s.delete(
                s.get(
                    EvidenceLink,
                    (archived["photo"], "inspection", uuid.UUID(archived["inspection"])),
                )
            ),
            "inspection.archived",
        ),
        (
            lambda s: setattr(
                s.query(CustodyEvent).filter_by(sha256=archived["other"]).first(), "action", "x"
            ),
            "evidence.custody_append_only",
        ),
    ]
    for change, code in attempts:
        with sessionmaker() as s:
            change(s)
            with pytest.raises(DomainError) as error:
                s.flush()
            assert error.value.code == code
    with sessionmaker() as s:
        from fieldsync.cases.models import Case

        case = s.get(Case, uuid.UUID(archived["case"]))
        s.delete(case.officers[0])
        with pytest.raises(DomainError) as error:
            s.flush()
        assert error.value.code == "case.archived"
    # a derivative from nothing is no change to the original
    with sessionmaker() as s, s.begin():
        _evidence(s, archived["photo"]).thumbnail_sha256 = "f" * 64
    with sessionmaker() as s:
        _evidence(s, archived["photo"]).thumbnail_sha256 = "e" * 64
        with pytest.raises(DomainError) as error:
            s.flush()
        assert error.value.code == "evidence.archived"


def test_a_failed_derivation_of_an_archived_photo_waits_like_any_other(
    api: Any, archived: dict[str, Any], app: Any
) -> None:
    """The job's count of failed tries is not the evidence: it may change on sealed evidence
    (through the ORM and in SQL), so that a sealed photo the store cannot read waits too."""
    services = app.extensions["fieldsync"]
    store = services.extras["blobstore"]
    kept = store.open(archived["photo"]).read()
    assert store.delete(archived["photo"])
    assert make_derivatives(services) == 1  # the other photo; the sealed one failed
    with services.sessionmaker() as session:
        evidence = _evidence(session, archived["photo"])
        assert evidence.derivative_attempts == 1 and evidence.derivatives_retry_at is not None
        assert evidence.derivatives_at is None
    assert make_derivatives(services) == 0  # waiting: not tried again at once
    engine = services.engine
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE evidence SET derivatives_retry_at = NULL WHERE sha256 = :s"),
            {"s": archived["photo"]},
        )
    with pytest.raises(DBAPIError, match="evidence of an archived case"), engine.begin() as c:
        c.execute(
            text("UPDATE evidence SET size = size + 1 WHERE sha256 = :s"), {"s": archived["photo"]}
        )
    store.put_stream(archived["photo"], io.BytesIO(kept))
    assert make_derivatives(services) == 1
    assert set(api.get(f"/evidence/{archived['photo']}", "captain").get_json()["derivatives"]) == {
        "thumbnail",
        "display",
    }
