"""Synced entities, declared once each: model, device-written fields with their merge policy,
validation, serialisation, who may write, and the actions beyond upsert."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma
from sqlalchemy.orm import Session

from fieldsync.sync.merge import FieldSpec


@dataclass(frozen=True)
class ActionContext:
    """What an action or hook needs to know about the mutation being applied."""

    session: Session
    principal: Any  # fieldsync.identity.service.Principal
    now: Any  # server receive time
    device_time: Any
    hlc: str
    config: Any
    # device clock minus server clock at this push, in ms (None: unknown)
    clock_skew_ms: int | None = None
    # the trace of the push's changes (rows of sync.models.Event), written together at its end
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SyncedEntity:
    name: str
    model: type
    # the record as devices receive it (`data`): stored at every change (sync.models.FeedPayload)
    serialize: Callable[[Any], dict[str, Any]]
    # device-written fields; empty for reference data, which devices only receive
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)
    # validates the values of `set` (partial) and the items of `add`
    schema: type[ma.Schema] | None = None
    # a new record from a device: (ctx, entity_id) -> model instance (not yet added)
    create: Callable[[ActionContext, Any], Any] | None = None
    # may this principal write this record? raises DomainError if not
    authorize: Callable[[ActionContext, Any], None] | None = None
    # the record's device-written values after the merge are valid (references exist)?
    check: Callable[[ActionContext, Mapping[str, Any]], None] | None = None
    # actions beyond upsert, by name ("submit"): (ctx, record, mutation) -> None
    actions: Mapping[str, Callable[[ActionContext, Any, Mapping[str, Any]], None]] = field(
        default_factory=dict
    )
    # after device-written fields changed: recompute server-owned ones (rule, evidence_missing)
    after_change: Callable[[ActionContext, Any], None] | None = None
    # is the record frozen for device writes (submitted)?
    is_submitted: Callable[[Any], bool] = lambda record: False
    # evidence hashes the record names (for missing_evidence)
    evidence_of: Callable[[Any], list[str]] | None = None

    @property
    def writable(self) -> bool:
        return bool(self.fields)


REGISTRY: dict[str, SyncedEntity] = {}


def register(entity: SyncedEntity) -> SyncedEntity:
    REGISTRY[entity.name] = entity
    return entity


def entity(name: str) -> SyncedEntity | None:
    _load()
    return REGISTRY.get(name)


def all_entities() -> dict[str, SyncedEntity]:
    _load()
    return REGISTRY


def _load() -> None:
    # the declarations live beside their domains; importing them registers them
    import fieldsync.inspections.entities  # noqa: F401
    import fieldsync.org.entities  # noqa: F401
