"""Field-level merge of a device mutation into a record: pure, shared by server and client.

A record keeps, per device-written field, the version at which it last changed and the HLC of
the write. A mutation names the version it was based on; a field changed on the server since
that base is a concurrent edit, resolved by the field's declared policy.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Policy(enum.StrEnum):
    UNION = "union"  # sets only grow on sync; items are plain values
    UNION_BY_ID = "union_by_id"  # lists of objects with an "id": grow; an item edit is LWW
    DEVICE_LWW = "device_lww"  # last writer by HLC wins, the loser is kept as a conflict
    SERVER_OWNED = "server_owned"  # devices never write it


@dataclass(frozen=True)
class FieldSpec:
    policy: Policy
    # frozen once the record is submitted (PROTOCOL.md §5: immutable_after_submit)
    immutable_after_submit: bool = True


@dataclass(frozen=True)
class FieldState:
    value: Any
    version: int  # record version at which the field last changed
    hlc: str  # clock of that write ("" for a server write)
    writer: str = ""  # device that wrote it ("" for a server write)

    def concurrent_with(self, base_version: int, writer: str) -> bool:
        """Changed since the mutation's base by someone else? A device's own earlier writes
        are never concurrent with its later ones: its mutations are applied in its order."""
        return self.version > base_version and self.writer != writer


@dataclass(frozen=True)
class LostValue:
    """A value that did not make it into the record, kept for a person to look at."""

    field: str
    kept: Any  # what the record holds after the merge
    lost: Any  # what was set aside
    lost_side: str  # "device" or "server"


@dataclass
class MergeResult:
    changed: dict[str, Any] = field(default_factory=dict)  # field -> new value
    lost: list[LostValue] = field(default_factory=list)
    concurrent: bool = False  # some field changed on the server since base_version

    @property
    def status(self) -> str:
        if self.lost:
            return "conflict"
        return "merged" if self.concurrent else "applied"


class MergeRefused(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def merge(
    spec: Mapping[str, FieldSpec],
    state: Mapping[str, FieldState],
    *,
    base_version: int,
    hlc: str,
    writer: str,
    set_: Mapping[str, Any],
    add: Mapping[str, list[Any]],
    remove: Mapping[str, list[Any]],
    submitted: bool,
) -> MergeResult:
    """Merge one mutation. `state` holds the current value of every declared field."""
    result = MergeResult()
    for name in list(set_) + list(add) + list(remove):
        if name not in spec:
            raise MergeRefused("sync.unknown_field", field=name)
        if spec[name].policy is Policy.SERVER_OWNED:
            raise MergeRefused("sync.field_server_owned", field=name)

    for name, value in set_.items():
        fs = spec[name]
        current = state[name]
        concurrent = current.concurrent_with(base_version, writer)
        result.concurrent |= concurrent
        if submitted and fs.immutable_after_submit:
            if value != current.value:
                result.lost.append(LostValue(name, current.value, value, "device"))
            continue
        if fs.policy is Policy.UNION:
            merged = _union(current.value, value)
            if merged != current.value:
                result.changed[name] = merged
        elif fs.policy is Policy.UNION_BY_ID:
            merged, lost = _union_by_id(name, current, value, hlc=hlc, concurrent=concurrent)
            result.lost.extend(lost)
            if merged != current.value:
                result.changed[name] = merged
        else:  # DEVICE_LWW
            if value == current.value:
                continue
            if not concurrent:
                result.changed[name] = value
            elif hlc > current.hlc:
                result.changed[name] = value
                result.lost.append(LostValue(name, value, current.value, "server"))
            else:
                result.lost.append(LostValue(name, current.value, value, "device"))

    for name, items in add.items():
        fs = spec[name]
        current = state[name]
        if fs.policy not in (Policy.UNION, Policy.UNION_BY_ID):
            raise MergeRefused("sync.not_a_set_field", field=name)
        base = result.changed.get(name, current.value)
        merged = (
            _union(base, items)
            if fs.policy is Policy.UNION
            else _union_by_id(
                name,
                FieldState(base, current.version, current.hlc, current.writer),
                items,
                hlc=hlc,
                concurrent=current.concurrent_with(base_version, writer),
            )[0]
        )
        if submitted and fs.immutable_after_submit:
            if merged != current.value:
                result.lost.append(LostValue(name, current.value, items, "device"))
            continue
        if merged != current.value:
            result.changed[name] = merged

    for name, items in remove.items():
        fs = spec[name]
        current = state[name]
        if fs.policy not in (Policy.UNION, Policy.UNION_BY_ID):
            raise MergeRefused("sync.not_a_set_field", field=name)
        base = result.changed.get(name, current.value) or []
        if fs.policy is Policy.UNION:
            kept = [v for v in base if v not in items]
        else:
            kept = [v for v in base if v.get("id") not in items]
        if submitted and fs.immutable_after_submit:
            if kept != current.value:
                result.lost.append(LostValue(name, current.value, {"remove": items}, "device"))
            continue
        if kept != base:
            result.changed[name] = kept
    return result


def _union(current: list[Any] | None, new: list[Any]) -> list[Any]:
    merged = list(current or [])
    for value in new:
        if value not in merged:
            merged.append(value)
    return merged


def _union_by_id(
    name: str, current: FieldState, new: list[dict[str, Any]], *, hlc: str, concurrent: bool
) -> tuple[list[dict[str, Any]], list[LostValue]]:
    merged = [dict(item) for item in (current.value or [])]
    index = {item["id"]: i for i, item in enumerate(merged)}
    lost: list[LostValue] = []
    for item in new:
        i = index.get(item["id"])
        if i is None:
            index[item["id"]] = len(merged)
            merged.append(dict(item))
        elif merged[i] != item:
            if not concurrent or hlc > current.hlc:
                if concurrent:
                    lost.append(LostValue(f"{name}[{item['id']}]", item, merged[i], "server"))
                merged[i] = dict(item)
            else:
                lost.append(LostValue(f"{name}[{item['id']}]", merged[i], item, "device"))
    return merged, lost
