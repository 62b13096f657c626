"""Configuration, read once from the environment (FIELDSYNC_*)."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from fieldsync.rules.case_states import DEFAULT_CASE_NUMBER_FORMAT, check_case_number_format

# sync cursors, tombstones and the replay log are kept at least this long (PROTOCOL.md §2)
MIN_SYNC_RETENTION_DAYS = 30


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FIELDSYNC_{name}", default)


@dataclass
class Config:
    """Every setting the service has, with its environment variable in the comment."""

    data_dir: Path = field(default_factory=lambda: Path(_env("DATA_DIR", "var")).resolve())
    # FIELDSYNC_DATABASE_URL; default: SQLite file under the data directory
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", ""))
    # FIELDSYNC_BLOBSTORE_URL: file:///path (default, under data_dir/blobs) or s3://bucket/prefix
    blobstore_url: str = field(default_factory=lambda: _env("BLOBSTORE_URL", ""))
    token_lifetime_hours: int = field(
        default_factory=lambda: int(_env("TOKEN_LIFETIME_HOURS", str(24 * 30)))
    )
    max_body_bytes: int = field(default_factory=lambda: int(_env("MAX_BODY_BYTES", str(4 << 20))))
    sync_max_mutations: int = field(default_factory=lambda: int(_env("SYNC_MAX_MUTATIONS", "1000")))
    sync_page_max: int = field(default_factory=lambda: int(_env("SYNC_PAGE_MAX", "1000")))
    sync_retention_days: int = field(default_factory=lambda: int(_env("SYNC_RETENTION_DAYS", "90")))
    clock_skew_flag_seconds: int = field(
        default_factory=lambda: int(_env("CLOCK_SKEW_FLAG_SECONDS", "300"))
    )
    upload_max_bytes: int = field(
        default_factory=lambda: int(_env("UPLOAD_MAX_BYTES", str(50 << 20)))
    )
    upload_expiry_hours: int = field(default_factory=lambda: int(_env("UPLOAD_EXPIRY_HOURS", "72")))
    image_max_pixels: int = field(
        default_factory=lambda: int(_env("IMAGE_MAX_PIXELS", str(80_000_000)))
    )
    exif_time_tolerance_minutes: int = field(
        default_factory=lambda: int(_env("EXIF_TIME_TOLERANCE_MINUTES", "30"))
    )
    exif_distance_tolerance_m: int = field(
        default_factory=lambda: int(_env("EXIF_DISTANCE_TOLERANCE_M", "500"))
    )
    case_number_format: str = field(
        default_factory=lambda: _env("CASE_NUMBER_FORMAT", DEFAULT_CASE_NUMBER_FORMAT)
    )
    default_language: str = field(default_factory=lambda: _env("DEFAULT_LANGUAGE", "zh"))
    # argon2 cost; tests lower it, production keeps the library's defaults
    password_time_cost: int = field(default_factory=lambda: int(_env("PASSWORD_TIME_COST", "3")))
    password_memory_kib: int = field(
        default_factory=lambda: int(_env("PASSWORD_MEMORY_KIB", str(64 * 1024)))
    )
    # signs sync cursors; every server process must share it (env, or a file in the data dir)
    secret_key: str = field(default_factory=lambda: _env("SECRET_KEY", ""))
    run_scheduler: bool = field(default_factory=lambda: _env("RUN_SCHEDULER", "1") == "1")
    # FIELDSYNC_TRUSTED_PROXIES: how many reverse proxies in front set X-Forwarded-For (0: none);
    # custody records where each view and download came from
    trusted_proxies: int = field(default_factory=lambda: int(_env("TRUSTED_PROXIES", "0")))
    testing: bool = False

    def __post_init__(self) -> None:
        if self.sync_retention_days < MIN_SYNC_RETENTION_DAYS:
            raise ValueError(
                f"FIELDSYNC_SYNC_RETENTION_DAYS is {self.sync_retention_days}: it must be at "
                f"least {MIN_SYNC_RETENTION_DAYS} days, so that a phone offline for a month "
                "still resumes from its cursor (PROTOCOL.md §2)"
            )
        self.data_dir = Path(self.data_dir)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'fieldsync.db'}"
        # a bad format would number cases wrongly, or fail at the first filing: fail at startup
        try:
            check_case_number_format(self.case_number_format)
        except ValueError as error:
            raise ValueError(f"FIELDSYNC_CASE_NUMBER_FORMAT: {error}") from None

    def secret(self) -> bytes:
        """The signing secret: FIELDSYNC_SECRET_KEY, else one made once and kept in the data
        directory (created exclusively, so concurrent server processes agree on it)."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
        for _ in range(50):
            text = path.read_text().strip()
            if text:
                self.secret_key = text
                return text.encode()
            time.sleep(0.01)  # another process is writing it
        raise RuntimeError(f"empty secret key file {path}")

    @classmethod
    def from_env(cls, **overrides: object) -> Config:
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        return cls(**overrides)  # type: ignore[arg-type]
