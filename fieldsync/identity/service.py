"""Sign-in, device registration, token checks and device revocation. Never commits."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, lazyload

from fieldsync.errors import DomainError
from fieldsync.identity.models import Device
from fieldsync.org.models import Person, Role

TOKEN_PREFIX = "fs1_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the person, their device, roles and the street that bounds what they see."""

    person: Person
    device: Device
    roles: frozenset[Role]

    @property
    def street_id(self) -> uuid.UUID:
        return self.person.street_id

    @property
    def person_id(self) -> uuid.UUID:
        return self.person.id

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


def password_hasher(*, time_cost: int = 3, memory_kib: int = 64 * 1024) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def register_device(
    session: Session,
    *,
    hasher: PasswordHasher,
    username: str,
    password: str,
    device_id: uuid.UUID,
    device_name: str,
    now: datetime,
    lifetime: timedelta,
) -> tuple[Device, str]:
    """Check the password and issue a fresh token bound to the device. Returns (device, token)."""
    person = session.scalar(select(Person).where(Person.username == username))
    if person is None:
        # spend the same time as a real check, so a probe cannot tell which usernames exist
        hasher.hash(password)
        raise DomainError("auth.invalid_credentials")
    try:
        hasher.verify(person.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise DomainError("auth.invalid_credentials") from None
    if not person.active:
        raise DomainError("auth.account_disabled")

    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    device = session.get(Device, device_id)
    if device is None:
        device = Device(id=device_id, person_id=person.id, name=device_name)
        session.add(device)
    elif device.revoked_at is not None:
        raise DomainError("auth.device_revoked")
    elif device.person_id != person.id:
        # a device's mutation history is one person's; another user registers their own device
        raise DomainError("auth.device_owned_by_other")
    device.name = device_name
    device.token_hash = _token_hash(token)
    device.token_expires_at = now + lifetime
    device.person = person
    session.flush()
    return device, token


# what every request reads to know its caller, in one query: the device, its person and the
# person's roles. The rest of a person (certificates, department, street) loads when used:
# most requests never look, and their eager loads were two more queries on every request.
_PRINCIPAL = (
    joinedload(Device.person).options(
        joinedload(Person.role_rows),
        lazyload(Person.certificates),
        lazyload(Person.department),
        lazyload(Person.street),
    ),
)


def authenticate(session: Session, *, authorization: str | None, now: datetime) -> Principal:
    """Turn an Authorization header into a principal; checked against the database every time,
    so that a revocation takes effect on the next request on every server process."""
    if not authorization:
        raise DomainError("auth.required")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise DomainError("auth.token_invalid")
    stmt = select(Device).where(Device.token_hash == _token_hash(token)).options(*_PRINCIPAL)
    device = session.scalars(stmt).unique().one_or_none()
    if device is None:
        raise DomainError("auth.token_invalid")
    if device.revoked_at is not None:
        raise DomainError("auth.device_revoked")
    if device.token_expires_at <= now:
        raise DomainError("auth.token_expired")
    person = device.person
    if not person.active:
        raise DomainError("auth.account_disabled")
    return Principal(person=person, device=device, roles=person.roles)


def touch_device(device: Device, *, now: datetime) -> None:
    # a minute's resolution is enough to show "last seen" and spares a write per request
    if device.last_seen_at is None or now - device.last_seen_at > timedelta(minutes=1):
        device.last_seen_at = now


def revoke_device(
    session: Session, *, device_id: uuid.UUID, by: Principal, reason: str | None, now: datetime
) -> Device:
    device = session.get(Device, device_id)
    if device is None or device.person.street_id != by.street_id:
        raise DomainError("identity.unknown_device", id=str(device_id))
    if device.revoked_at is None:
        device.revoked_at = now
        device.revoked_by_id = by.person_id
        device.revoked_reason = reason
    session.flush()
    return device


def list_devices(session: Session, *, street_id: uuid.UUID) -> list[Device]:
    stmt = (
        select(Device)
        .join(Person, Device.person_id == Person.id)
        .where(Person.street_id == street_id)
        .order_by(Device.registered_at, Device.id)
    )
    return list(session.scalars(stmt))
