"""Every JSON endpoint answers whatever body it is sent with a 2xx or a 4xx that names its error,
never a server error. Hypothesis starts from the valid body the permission table sends to each
endpoint (test_permissions.REQUESTS) and spoils it: a part left out, a part of any JSON or of
its own type with another content (a UUID naming nothing), a part more, the same inside its
objects and lists, or the whole body any JSON. The callers are the
roles each endpoint lets through, on the street whose objects the path names."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from json_strategies import json_values  # type: ignore[import-not-found]
from permissions_world import World  # type: ignore[import-not-found]
from test_permissions import (  # type: ignore[import-not-found]
    ALL,
    EXPECTED,
    PUBLIC,
    Ctx,
    _path,
    _request,
    sealed_cleanup,  # noqa: F401 - a fixture world uses
    world,  # noqa: F401 - the fixture
)


def _uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def other_of_its_kind(valid: Any) -> st.SearchStrategy[Any]:
    """A value of the same JSON type and another content: a UUID naming nothing, another text,
    another number (what a schema lets through to the code behind it)."""
    if isinstance(valid, bool):
        return st.booleans()
    if isinstance(valid, int):
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    if isinstance(valid, float):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(valid, str):
        return st.uuids().map(str) if _uuid(valid) else st.text(max_size=40)
    return json_values


def spoilt(valid: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """`valid` with one thing wrong in it, at any depth, or as it is, or any JSON instead."""
    options: list[st.SearchStrategy[Any]] = [st.just(valid), json_values, other_of_its_kind(valid)]
    if isinstance(valid, dict) and valid:
        keys = sorted(valid)
        options += [
            st.sets(st.sampled_from(keys), min_size=1).map(
                lambda gone: {k: v for k, v in valid.items() if k not in gone}
            ),
            st.tuples(st.text(max_size=8), json_values).map(lambda kv: {kv[0]: kv[1], **valid}),
        ]
        if depth < 3:
            options.append(
                st.sampled_from(keys).flatmap(
                    lambda k: spoilt(valid[k], depth + 1).map(lambda v: {**valid, k: v})
                )
            )
    if isinstance(valid, list) and valid and depth < 3:
        options.append(
            st.integers(0, len(valid) - 1).flatmap(
                lambda i: spoilt(valid[i], depth + 1).map(
                    lambda v: [*valid[:i], v, *valid[i + 1 :]]
                )
            )
        )
    return st.one_of(options)


def _json_calls() -> list[tuple[str, str]]:
    return sorted(
        (method, rule)
        for method, rule in EXPECTED
        if method in ("POST", "PATCH", "PUT")
        and EXPECTED[(method, rule)] != PUBLIC
        and not rule.startswith("/api/v1/uploads")  # tus: headers and bytes, not JSON
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_body_is_a_server_error(world: World, data: Any) -> None:  # noqa: F811
    method, rule = data.draw(st.sampled_from(_json_calls()), label="endpoint")
    allowed = EXPECTED[(method, rule)]
    role = data.draw(st.sampled_from(sorted(ALL if allowed == ALL else allowed)), label="role")
    street = world.streets["A"]
    caller = street.callers[role]
    request = _request(method, rule, Ctx(caller, street, _COUNTER))
    body = data.draw(spoilt(request.pop("json", {})), label="body")
    path = _path(method, rule, street)
    resp = world.call(caller, method, path, json=body, **request)
    event(f"{resp.status_code // 100}xx")  # --hypothesis-show-statistics: how many got through
    assert resp.status_code < 500, (method, path, body, resp.get_data()[:500])
    if resp.status_code >= 400:
        answer = resp.get_json(silent=True)
        assert isinstance(answer, dict) and answer.get("error"), (method, path, resp.data[:300])
        assert answer.get("message"), answer


_COUNTER = itertools.count()


@pytest.mark.parametrize("body", [None, [], "x", 1, {"": None}])
def test_the_sign_in_answers_any_body_with_a_4xx(api: Any, demo: Any, body: Any) -> None:
    resp = api.client.post("/api/v1/auth/devices", json=body)
    assert 400 <= resp.status_code < 500, resp.get_data()[:300]
    assert resp.get_json()["error"]
