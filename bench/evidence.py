"""Evidence benchmarks (issue 5): tus upload throughput of 5 MB photos beside the machine's
SHA-256 rate, a 12-megapixel thumbnail beside a bare Pillow decode, and a real server's peak
memory while a 50 MB motion photo is uploaded, on SQLite and on PostgreSQL.

The bench makes its own test photos with Pillow: a 12-megapixel camera-like JPEG of 5 MB
(gradients under grain, quality 92) and, for the largest upload, the same photo followed by a
motion-photo video (an MP4 header and random bytes) up to the 50 MiB upload limit. fieldsync
itself imports Pillow only in fieldsync.evidence.imaging.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.env import POSTGRES_URL, bench_database, postgres_answers
from bench.table import Report, Row, Target

MB = 1 << 20
NA = "n/a (uploads not available)"
PHOTO_BYTES = 5 * MB  # a 12-megapixel phone photo
BIG_BYTES = 50 * MB  # the default upload limit (FIELDSYNC_UPLOAD_MAX_BYTES): the largest accepted
PEAK_TARGET_MB = 100


def run(
    report: Report, workdir: Path, *, quick: bool, dbs: tuple[str, ...] = ("sqlite", "postgresql")
) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    sha_rate = _sha256_rate()
    photo = _camera_jpeg(workdir / "12mp.jpg", size=PHOTO_BYTES)
    _thumbnail(report, photo, workdir)
    for db in dbs:
        if db == "postgresql" and not postgres_answers():
            report.notes.append(
                f"evidence on postgresql: SKIPPED, nothing answers at {POSTGRES_URL}"
            )
            continue
        _uploads(report, workdir / db, db, photo, sha_rate, quick=quick)


def _sha256_rate() -> float:
    """MB/s of hashlib.sha256 over 1 MB blocks: the ceiling for a hashing upload path."""
    block = os.urandom(MB)
    rates = []
    for _ in range(3):
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for _ in range(128):
            h.update(block)
        rates.append(128 / (time.perf_counter() - t0))
    return statistics.median(rates)


def _camera_jpeg(path: Path, *, size: int) -> Path:
    """A 4000x3000 JPEG of `size` bytes (within 3 %), like a phone's: smooth gradients under
    grain, whose strength is searched for (the file grows with it about linearly)."""
    from PIL import Image

    width, height = 4000, 3000
    ramp = Image.linear_gradient("L").resize((width, height))
    scene = Image.merge(
        "RGB",
        (
            ramp,
            ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
            ramp.transpose(Image.Transpose.ROTATE_180),
        ),
    )
    grain = Image.frombytes("RGB", (width, height), random.Random(12).randbytes(width * height * 3))

    def encode(strength: float) -> bytes:
        out = io.BytesIO()
        Image.blend(scene, grain, strength).save(out, "JPEG", quality=92)
        return out.getvalue()

    low, high = 0.05, 0.3
    sizes = {low: len(encode(low)), high: len(encode(high))}
    data = b""
    for _ in range(4):
        strength = low + (high - low) * (size - sizes[low]) / (sizes[high] - sizes[low])
        data = encode(strength)
        if abs(len(data) - size) <= 0.03 * size:
            break
        low, high = (strength, high) if len(data) < size else (low, strength)
        sizes[strength] = len(data)
    assert abs(len(data) - size) <= 0.03 * size, f"made {len(data)} bytes, wanted {size}"
    path.write_bytes(data)
    return path


def _variant(photo: bytes, n: int) -> bytes:
    """The same photo with a JPEG comment after SOI: other bytes (another SHA-256, so no upload
    is deduplicated), the same pixels and decoding cost."""
    comment = f"fieldsync bench photo {n}".encode()
    return photo[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + photo[2:]


def _motion_photo(path: Path, photo: bytes, *, size: int) -> Path:
    """`photo` followed by a motion-photo video: an MP4 header, then random bytes to `size`."""
    header = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    video = random.Random(50).randbytes(size - len(photo) - len(header))
    path.write_bytes(photo + header + video)
    assert path.stat().st_size == size
    return path


def _thumbnail(report: Report, src: Path, workdir: Path) -> None:
    from PIL import Image

    from fieldsync.evidence.imaging import make_thumbnail

    with Image.open(src) as im:
        size = im.size
    thumb, decode = [], []
    for i in range(3):
        t0 = time.perf_counter()
        make_thumbnail(src, workdir / f"thumb{i}.jpg")
        thumb.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with Image.open(src) as im:
            im.load()
        decode.append(time.perf_counter() - t0)
    t, d = statistics.median(thumb), statistics.median(decode)
    report.add(
        Row(
            "-",
            f"thumbnail of a {size[0]}×{size[1]} JPEG ({src.stat().st_size / MB:.1f} MB)",
            t * 1000,
            "ms",
            d * 1000,
            "bare Pillow decode, ms",
            "make_thumbnail, median of 3 (lower is better; ratio = time/decode)",
        )
    )


# --- tus uploads through a real gunicorn server and the tuspy client ---------------------------


def _uploads_available() -> str | None:
    """None if the tus endpoints are there, else why not."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "fieldsync" / "api" / "uploads.py").exists():
        return "fieldsync/api/uploads.py does not exist"
    try:
        import tusclient  # noqa: F401
    except ImportError:
        return "tuspy is not installed"
    return None


def _uploads(
    report: Report, workdir: Path, db: str, photo: Path, sha_rate: float, *, quick: bool
) -> None:
    why = _uploads_available()
    try:
        if why is not None:
            raise _Unavailable(why)
        workdir.mkdir(parents=True, exist_ok=True)
        with bench_database(db, workdir) as url, _serving(workdir, url) as server:
            if not server.has_uploads():
                raise _Unavailable("the server has no /api/v1/uploads yet")
            count = 3 if quick else 8
            original = photo.read_bytes()
            photos = []
            for n in range(count + 1):
                photos.append(workdir / f"p{n}.jpg")
                photos[-1].write_bytes(_variant(original, n))
            server.upload(photos[0])  # warm-up: imports, first connection
            sizes = sum(p.stat().st_size for p in photos[1:])
            t0 = time.perf_counter()
            for p in photos[1:]:
                server.upload(p)
            rate = sizes / MB / (time.perf_counter() - t0)
            report.add(
                Row(
                    db,
                    f"tus upload, {count} photos of {sizes / MB / count:.1f} MB in 1 MB chunks",
                    rate,
                    "MB/s",
                    sha_rate,
                    "SHA-256 of 1 MB blocks",
                    "gunicorn (1 worker) + tuspy: hash, markup scan, decode, store, record",
                )
            )
            big = _motion_photo(workdir / "motion.jpg", _variant(original, -1), size=BIG_BYTES)
            idle = server.rss_kib()
            server.reset_peak()
            t0 = time.perf_counter()
            server.upload(big)
            seconds = time.perf_counter() - t0
            above = (server.peak_kib() - idle) / 1024
            report.add(
                Row(
                    db,
                    f"peak RSS uploading a {BIG_BYTES / MB:.0f} MB motion photo, above idle",
                    above,
                    "MB",
                    PEAK_TARGET_MB,
                    "target, MB",
                    f"VmHWM−VmRSS of the gunicorn worker (idle {idle / 1024:.0f} MB); "
                    f"12 MP JPEG + video, uploaded in {seconds:.1f} s",
                )
            )
            report.targets.append(
                Target(
                    db,
                    f"peak memory above idle, {BIG_BYTES / MB:.0f} MB upload",
                    above,
                    f"< {PEAK_TARGET_MB} MB",
                    above < PEAK_TARGET_MB,
                )
            )
    except _Unavailable as exc:
        _not_available(report, db, str(exc))
    except Exception as exc:  # the endpoints are being written: say what happened, go on
        _not_available(report, db, f"{type(exc).__name__}: {str(exc)[:120]}")


def _not_available(report: Report, db: str, why: str) -> None:
    report.add(Row(db, "tus upload, 5 MB photos in 1 MB chunks", None, "MB/s", note=NA))
    report.add(Row(db, "peak RSS uploading a 50 MB motion photo, above idle", None, "MB", note=NA))
    report.targets.append(
        Target(db, "peak memory above idle, 50 MB upload", None, f"< {PEAK_TARGET_MB} MB", None)
    )
    report.notes.append(f"uploads on {db}: {why}")


@contextmanager
def _serving(workdir: Path, url: str) -> Iterator[_Server]:
    server = _Server(workdir, url)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class _Unavailable(Exception):
    pass


class _Server:
    """A real gunicorn with one sync worker over its own database (SQLite or PostgreSQL)."""

    def __init__(self, workdir: Path, url: str) -> None:
        self.workdir = workdir
        self.url = url
        self.data = workdir / "server"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: io.BufferedWriter | None = None
        self.token = ""

    def start(self) -> None:
        from fieldsync.demo import load_demo
        from fieldsync.identity.service import password_hasher
        from fieldsync.migrate import upgrade

        url = self.url
        self.data.mkdir(parents=True, exist_ok=True)
        upgrade(url)
        from fieldsync.db import make_engine, make_sessionmaker

        engine = make_engine(url)
        with make_sessionmaker(engine)() as s, s.begin():
            load_demo(s, hasher=password_hasher(time_cost=1, memory_kib=8))
        engine.dispose()
        env = dict(
            os.environ,
            FIELDSYNC_DATABASE_URL=url,
            FIELDSYNC_DATA_DIR=str(self.data),
            FIELDSYNC_RUN_SCHEDULER="0",
            FIELDSYNC_PASSWORD_TIME_COST="1",
            FIELDSYNC_PASSWORD_MEMORY_KIB="8",
            FIELDSYNC_SECRET_KEY="bench-secret",
        )
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
        self.log = open(self.workdir / "gunicorn.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                gunicorn,
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "120",
                "fieldsync:create_app()",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not answer within 30 s")
        self.token = self._login("cg_wang")

    def _login(self, username: str) -> str:
        from fieldsync.demo import password_for

        body = json.dumps(
            {
                "username": username,
                "password": password_for(username),
                "device_id": str(uuid.uuid4()),
                "device_name": "bench",
            }
        ).encode()
        req = urllib.request.Request(
            f"{self.base}/api/v1/auth/devices",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["token"]

    def has_uploads(self) -> bool:
        req = urllib.request.Request(f"{self.base}/api/v1/uploads", method="OPTIONS")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return "Tus-Version" in resp.headers
        except urllib.error.HTTPError as e:
            return "Tus-Version" in e.headers
        except OSError:
            return False

    def upload(self, path: Path) -> None:
        """Upload through tus, then prove the file became evidence (a refusal is no upload)."""
        from tusclient import client

        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        tus = client.TusClient(
            f"{self.base}/api/v1/uploads", headers={"Authorization": f"Bearer {self.token}"}
        )
        uploader = tus.uploader(
            file_path=str(path),
            chunk_size=MB,
            metadata={"sha256": sha, "filename": path.name, "content_type": "image/jpeg"},
        )
        uploader.upload()
        req = urllib.request.Request(
            f"{self.base}/api/v1/evidence/{sha}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            size = json.loads(resp.read())["size"]
        assert size == path.stat().st_size, f"{path.name}: evidence of {size} bytes"

    def _worker_pid(self) -> int:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def _status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self._worker_pid()}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} in /proc status")

    def rss_kib(self) -> int:
        return self._status_kib("VmRSS")

    def reset_peak(self) -> None:
        # "5" resets the peak resident set size (VmHWM) to the current RSS (Linux ≥ 4.0)
        Path(f"/proc/{self._worker_pid()}/clear_refs").write_text("5")

    def peak_kib(self) -> int:
        return self._status_kib("VmHWM")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
