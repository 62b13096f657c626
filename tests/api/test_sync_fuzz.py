"""Whatever a phone puts in a mutation, the push answers it: each mutation gets one of the four
outcomes, the request is never a server error, and the phone's next mutation still applies (the
queue is never blocked). Hypothesis writes the mutations: the objects of an inspection or report
with parts left out, parts of any JSON, parts more; and any JSON where `set`, `add` or `remove`
belongs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strategies import json_values  # type: ignore[import-not-found]
from sync_phone import Phone  # type: ignore[import-not-found]

from fieldsync.demo import demo_uuid, grid_code

OUTCOMES = {"applied", "merged", "conflict", "rejected"}
PEOPLE = [str(demo_uuid("person", u)) for u in ("cg_wang", "cg_liu", "police_zhao", "js_cg_xu")]
DUOFU_1 = str(demo_uuid("grid", grid_code("110101001001", 1)))
FINDING_ID = "6f1d3a52-8c1e-4a8e-9a53-1d2f3c4b5a61"


def near(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`valid` with some of its parts left out, or one of them any JSON, or a part more."""
    keys = sorted(valid)
    dropped = st.sets(st.sampled_from(keys), min_size=1).map(
        lambda gone: {k: v for k, v in valid.items() if k not in gone}
    )
    spoilt = st.tuples(st.sampled_from(keys), json_values).map(lambda kv: {**valid, kv[0]: kv[1]})
    more = st.tuples(st.text(max_size=6), json_values).map(lambda kv: {kv[0]: kv[1], **valid})
    return st.one_of(dropped, spoilt, more, st.just(valid))


def finding() -> st.SearchStrategy[dict[str, Any]]:
    return (
        st.uuids()
        .map(str)
        .flatmap(lambda i: near({"id": i, "matter_code": "CG-001", "description": "占道"}))
    )


def measure() -> st.SearchStrategy[dict[str, Any]]:
    valid = {"type": "photo_evidence", "finding_id": FINDING_ID, "details": {"note": "x"}}
    return st.uuids().map(str).flatmap(lambda i: near({"id": i, **valid}))


LOCATION = {"lat": 39.9139, "lon": 116.4023, "accuracy_m": 8.5}
PARTY = {"name": "张三", "phone": "13800138000", "id_document": "110101", "kind": "individual"}
INSPECTION_CHANGES = st.one_of(
    st.fixed_dictionaries({"location": near(LOCATION)}),
    st.fixed_dictionaries({"party": near(PARTY)}),
    st.fixed_dictionaries({"findings": st.lists(finding(), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"measures": st.lists(measure(), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"present": st.lists(st.sampled_from(PEOPLE) | json_values, max_size=3)}),
    st.fixed_dictionaries(
        {"evidence": st.lists(st.sampled_from(["a" * 64, "A" * 64]) | json_values)}
    ),
    st.dictionaries(st.text(max_size=12), json_values, max_size=2),
)
REPORT_CHANGES = st.one_of(
    st.fixed_dictionaries({"location": near(LOCATION)}),
    st.fixed_dictionaries({"grid_id": st.sampled_from([DUOFU_1, str(uuid.uuid4())]) | json_values}),
    st.fixed_dictionaries({"evidence": st.lists(json_values, max_size=2)}),
    st.dictionaries(st.text(max_size=12), json_values, max_size=2),
)


def mutations(entity: str, changes: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An upsert of the record (set, add or remove, or several), now and then a submit."""
    upsert = st.sampled_from([f"{entity}.upsert"] * 5 + [f"{entity}.submit"])
    return st.one_of(
        *[st.fixed_dictionaries({"type": upsert, "set": changes})] * 3,
        st.fixed_dictionaries({"type": upsert, "add": changes}),
        st.fixed_dictionaries({"type": upsert, "remove": changes}),
        st.fixed_dictionaries(
            {"type": upsert},
            optional={"set": json_values, "add": json_values, "remove": json_values},
        ),
    )


def _settings() -> Any:
    # the phones are the test's (fixtures), shared by its examples; each example writes to a
    # record of its own
    return settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _pushed(phone: Phone, new: dict[str, Any], sent: list[dict[str, Any]]) -> None:
    record = str(uuid.uuid4())
    [made] = phone.push(phone.mutation(entity_id=record, **new))
    assert made["status"] == "applied", made
    batch = [phone.mutation(entity_id=record, base_version=1, **m) for m in sent]
    resp = phone.send(batch)
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert [r["device_seq"] for r in results] == [m["device_seq"] for m in batch]
    assert {r["status"] for r in results} <= OUTCOMES, results
    # the queue goes on
    [after] = phone.push(phone.mutation(entity_id=str(uuid.uuid4()), **new))
    assert after["status"] == "applied", after


NEW = {
    "inspection": {
        "type": "inspection.upsert",
        "set": {
            "matter_code": "CG-001",
            "present": PEOPLE[:2],
            "findings": [{"id": FINDING_ID, "matter_code": "CG-001"}],
        },
    },
    "report": {"type": "report.upsert", "set": {"description": "占道", "grid_id": DUOFU_1}},
}
WRITERS = {"inspection": ("cg_wang", INSPECTION_CHANGES), "report": ("grid_duofu1", REPORT_CHANGES)}


@pytest.fixture(params=sorted(WRITERS))
def writer(request: Any, api: Any, demo: Any) -> tuple[str, Phone]:
    return request.param, Phone(api, WRITERS[request.param][0])


@_settings()
@given(data=st.data())
def test_any_mutation_gets_an_outcome_and_the_queue_goes_on(
    writer: tuple[str, Phone], data: Any
) -> None:
    entity, phone = writer
    changes = WRITERS[entity][1]
    sent = data.draw(st.lists(mutations(entity, changes), min_size=1, max_size=3), label="sent")
    _pushed(phone, NEW[entity], sent)
