"""The scheduler a server process starts: every job of the schedule, at its interval."""

from __future__ import annotations

from typing import Any

from fieldsync.jobs import schedule, start_scheduler


def test_a_serving_process_schedules_every_job(app: Any) -> None:
    services = app.extensions["fieldsync"]
    scheduler = start_scheduler(services)
    try:
        jobs = {job.id: job.trigger.interval for job in scheduler.get_jobs()}
        assert jobs == {name: every for name, (_job, every) in schedule().items()}
    finally:
        scheduler.shutdown(wait=True)
        services.extras.pop("scheduler", None)
