"""A request's caller is read in one statement (device, person, roles); the rest of the person
still loads when something uses it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from fieldsync.clock import utcnow
from fieldsync.demo import password_for
from fieldsync.identity.service import authenticate, register_device
from fieldsync.org.models import Role


def test_the_caller_is_read_in_one_statement_and_the_rest_when_used(
    app: Any, session: Any, demo: Any
) -> None:
    services = app.extensions["fieldsync"]
    with session.begin():
        _, token = register_device(
            session,
            hasher=services.hasher,
            username="cg_wang",
            password=password_for("cg_wang"),
            device_id=uuid.uuid4(),
            device_name="phone",
            now=utcnow(),
            lifetime=services.token_lifetime,
        )
    session.expunge_all()
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):  # not SQLite's BEGIN IMMEDIATE
            statements.append(sql)

    event.listen(services.engine, "before_cursor_execute", count)
    try:
        with session.begin():
            principal = authenticate(session, authorization=f"Bearer {token}", now=utcnow())
            assert len(statements) == 1, statements
            assert principal.roles == {Role.OFFICER}
            assert principal.person.username == "cg_wang" and principal.device.name == "phone"
            assert len(statements) == 1
            assert [c.number for c in principal.person.certificates]  # loaded now, when used
            assert principal.person.street.code and len(statements) > 1
    finally:
        event.remove(services.engine, "before_cursor_execute", count)
