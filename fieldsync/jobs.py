"""Scheduled jobs (APScheduler 3): evidence derivatives, upload expiry and the sync retention
prune. Each job is a plain function over the app's Services, so tests and `flask --app
fieldsync run-jobs` call them too; each owns its transactions."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from fieldsync.clock import utcnow

log = logging.getLogger(__name__)

DERIVATIVES_JOB = "evidence.derivatives"
EXPIRY_JOB = "uploads.expire"
PRUNE_JOB = "sync.prune"


def make_derivatives(services: Any, *, limit: int = 50) -> int:
    """Thumbnails and GPS-free display copies for evidence that has none yet."""
    from fieldsync.evidence.derivatives import make_derivatives as derive

    return derive(
        services.sessionmaker,
        store=services.extras["blobstore"],
        config=services.config,
        limit=limit,
    )


def expire_uploads(services: Any, *, now: datetime | None = None) -> int:
    """Remove unfinished uploads past their Upload-Expires, refused ones, and stray part files."""
    from fieldsync.evidence.uploads import expire

    with services.sessionmaker() as session, session.begin():
        return expire(session, config=services.config, now=now or utcnow())


def prune_sync(services: Any, *, now: datetime | None = None) -> int:
    """Tombstones and replay-only mutation log rows older than the sync retention window."""
    from fieldsync.sync.retention import prune

    retention = timedelta(days=services.config.sync_retention_days)
    with services.sessionmaker() as session, session.begin():
        return sum(prune(session, now=now or utcnow(), retention=retention).values())


def schedule() -> dict[str, tuple[Callable[[Any], int], timedelta]]:
    """Every job by its id, with how often it runs, in the order `run-jobs` runs them."""
    return {
        EXPIRY_JOB: (expire_uploads, timedelta(minutes=15)),
        DERIVATIVES_JOB: (make_derivatives, timedelta(seconds=30)),
        PRUNE_JOB: (prune_sync, timedelta(hours=6)),
    }


def run_all(services: Any) -> dict[str, int]:
    return {name: job(services) for name, (job, _every) in schedule().items()}


def _guarded(job: Any, services: Any) -> None:
    try:
        job(services)
    except Exception:  # a failing run must not stop the schedule; the next run retries
        log.exception("scheduled job %s failed", getattr(job, "__name__", job))


def start_scheduler(services: Any) -> Any:
    """A background scheduler in this process (each server process runs its own: the jobs are
    safe to run concurrently)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
    )
    for name, (job, every) in schedule().items():
        scheduler.add_job(
            _guarded,
            "interval",
            seconds=every.total_seconds(),
            id=name,
            args=[job, services],
            next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    services.extras["scheduler"] = scheduler
    atexit.register(lambda: scheduler.shutdown(wait=False) if scheduler.running else None)
    return scheduler


def start_scheduler_when_serving(services: Any) -> Any:
    """Start the scheduler in a server process (gunicorn worker): not under tests, not when
    FIELDSYNC_RUN_SCHEDULER=0, and not for a `flask ...` command (migrate, run-jobs: a command
    does its work itself and exits)."""
    config = services.config
    if not config.run_scheduler or config.testing or click.get_current_context(silent=True):
        return None
    return start_scheduler(services)


def wake_derivatives(services: Any) -> None:
    """Run the derivatives job now rather than at its next interval (after a verified upload)."""
    scheduler = services.extras.get("scheduler")
    if scheduler is not None and scheduler.running:
        scheduler.modify_job(DERIVATIVES_JOB, next_run_time=datetime.now(UTC))


def register_cli(app: Any) -> None:
    @app.cli.command("run-jobs")
    def run_jobs_command() -> None:
        """Run the scheduled jobs once: upload expiry, evidence derivatives, sync prune."""
        for name, count in run_all(app.extensions["fieldsync"]).items():
            click.echo(f"{name}: {count}")
