"""Every table of fieldsync, imported in one place so the metadata is complete (Alembic, tests)."""

from fieldsync.cases import guard  # noqa: F401  (archive immutability on every flush)
from fieldsync.cases.models import Case, CaseNumberCounter, CaseOfficer
from fieldsync.evidence.models import CustodyEvent, Evidence, EvidenceLink, Upload
from fieldsync.identity.models import Device
from fieldsync.inspections.models import Inspection, Report
from fieldsync.org.models import (
    Certificate,
    Community,
    Department,
    District,
    Grid,
    Matter,
    Person,
    PersonRole,
    RosterPeriod,
    Street,
    Team,
)
from fieldsync.sync.models import (
    Conflict,
    ConflictPerson,
    DeviceSyncState,
    Event,
    FeedCounter,
    FeedEntry,
    FeedPayload,
    MutationRecord,
)

__all__ = [
    "Case",
    "CaseNumberCounter",
    "CaseOfficer",
    "Conflict",
    "ConflictPerson",
    "CustodyEvent",
    "DeviceSyncState",
    "Event",
    "Evidence",
    "EvidenceLink",
    "FeedCounter",
    "FeedEntry",
    "FeedPayload",
    "Inspection",
    "MutationRecord",
    "Report",
    "Certificate",
    "Community",
    "Department",
    "Device",
    "District",
    "Grid",
    "Matter",
    "Person",
    "PersonRole",
    "RosterPeriod",
    "Street",
    "Team",
    "Upload",
]
