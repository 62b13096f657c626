"""Reference data as devices receive it: departments, matters, the roster, grids."""

from __future__ import annotations

from typing import Any

from fieldsync.clock import isoformat
from fieldsync.org.models import Department, Grid, Matter, Person
from fieldsync.sync.registry import SyncedEntity, register


def _department(d: Department) -> dict[str, Any]:
    return {"code": d.code, "name_zh": d.name_zh, "name_en": d.name_en, "kind": d.kind.value}


def _matter(m: Matter) -> dict[str, Any]:
    return {
        "code": m.code,
        "name_zh": m.name_zh,
        "name_en": m.name_en,
        "department_id": str(m.department_id),
        "department_code": m.department.code,
        "department_kind": m.department.kind.value,
        "allowed_measures": m.allowed_measures,
        "legal_basis": m.legal_basis,
        "active": m.active,
    }


def _person(p: Person) -> dict[str, Any]:
    return {
        "username": p.username,
        "full_name": p.full_name,
        "title": p.title,
        "roles": sorted(r.value for r in p.roles),
        "street_id": str(p.street_id),
        "team_id": str(p.team_id) if p.team_id else None,
        "department_id": str(p.department_id) if p.department_id else None,
        "department_code": p.department.code if p.department else None,
        "grid_id": str(p.grid_id) if p.grid_id else None,
        "active": p.active,
        "certificates": [
            {
                "id": str(c.id),
                "number": c.number,
                "valid_from": isoformat(c.valid_from),
                "valid_to": isoformat(c.valid_to),
                "revoked_at": isoformat(c.revoked_at),
            }
            for c in p.certificates
        ],
    }


def _grid(g: Grid) -> dict[str, Any]:
    return {
        "code": g.code,
        "name_zh": g.name_zh,
        "name_en": g.name_en,
        "community_id": str(g.community_id),
        "street_id": str(g.community.street_id),
    }


register(SyncedEntity(name="department", model=Department, serialize=_department))
register(SyncedEntity(name="matter", model=Matter, serialize=_matter))
register(SyncedEntity(name="person", model=Person, serialize=_person))
register(SyncedEntity(name="grid", model=Grid, serialize=_grid))
