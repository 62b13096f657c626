"""Every table of fieldsync, imported in one place so the metadata is complete (Alembic, tests)."""

from fieldsync.identity.models import Device
from fieldsync.org.models import (
    Certificate,
    Community,
    Department,
    District,
    Grid,
    Matter,
    Person,
    PersonRole,
    Street,
    Team,
)

__all__ = [
    "Certificate",
    "Community",
    "Department",
    "Device",
    "District",
    "Grid",
    "Matter",
    "Person",
    "PersonRole",
    "Street",
    "Team",
]
