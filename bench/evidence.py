"""Evidence benchmarks (issue 5): tus upload throughput beside the machine's SHA-256 rate, a
12-megapixel thumbnail beside a bare Pillow decode, and a real server's memory while a 50 MB
photo is uploaded.

The bench makes its own test photos with Pillow (noise compresses like a detailed photo);
fieldsync itself imports Pillow only in fieldsync.evidence.imaging.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from bench.table import Report, Row, Target

MB = 1 << 20
NA = "n/a (uploads not available)"


def run(report: Report, workdir: Path, *, quick: bool) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    sha_rate = _sha256_rate()
    _thumbnail(report, workdir)
    _uploads(report, workdir, sha_rate, quick=quick)


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


def _photo(path: Path, *, megapixels: float, seed: int, smooth: bool = False) -> Path:
    from PIL import Image

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    if smooth:  # photo-like: gradients with grain
        grain = Image.effect_noise((width, height), 24)
        ramp = Image.linear_gradient("L").resize((width, height))
        im = Image.merge("RGB", (ramp, grain, ramp.rotate(90).resize((width, height))))
    else:  # detail everywhere: compresses like a busy street scene, at worst
        rnd = os.urandom(width * height * 3) if seed >= 0 else b""
        im = Image.frombytes("RGB", (width, height), rnd)
    im.save(path, "JPEG", quality=92)
    return path


def _thumbnail(report: Report, workdir: Path) -> None:
    from PIL import Image

    from fieldsync.evidence.imaging import make_thumbnail

    src = _photo(workdir / "12mp.jpg", megapixels=12, seed=0, smooth=True)
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


def _uploads(report: Report, workdir: Path, sha_rate: float, *, quick: bool) -> None:
    why = _uploads_available()
    server = None
    try:
        if why is None:
            server = _Server(workdir)
            server.start()
            if not server.has_uploads():
                why = "the server has no /api/v1/uploads yet"
        if why is not None:
            raise _Unavailable(why)
        assert server is not None
        count = 3 if quick else 8
        photos = [_photo(workdir / f"p{i}.jpg", megapixels=2.2, seed=i) for i in range(count + 1)]
        server.upload(photos[0])  # warm-up: imports, first connection
        sizes = sum(p.stat().st_size for p in photos[1:])
        t0 = time.perf_counter()
        for p in photos[1:]:
            server.upload(p)
        rate = sizes / MB / (time.perf_counter() - t0)
        avg = sizes / MB / count
        report.add(
            Row(
                "-",
                f"tus upload, {count} photos of ~{avg:.1f} MB in 1 MB chunks",
                rate,
                "MB/s",
                sha_rate,
                "SHA-256 of 1 MB blocks",
                "gunicorn (1 worker) + tuspy, SQLite",
            )
        )
        big = _photo(workdir / "big.jpg", megapixels=17, seed=99)
        while big.stat().st_size > 50 * MB:
            big = _photo(workdir / "big.jpg", megapixels=16, seed=98)
        idle = server.rss_kib()
        server.reset_peak()
        server.upload(big)
        peak = server.peak_kib()
        above = (peak - idle) / 1024
        report.add(
            Row(
                "-",
                f"peak RSS uploading a {big.stat().st_size / MB:.0f} MB photo, above idle",
                above,
                "MB",
                note=f"VmHWM−VmRSS of the gunicorn worker (idle {idle / 1024:.0f} MB)",
            )
        )
        report.targets.append(
            Target("-", "peak memory above idle, 50 MB upload", above, "< 100 MB", above < 100)
        )
    except _Unavailable as exc:
        _not_available(report, str(exc))
    except Exception as exc:  # the endpoints are being written: say what happened, go on
        _not_available(report, f"{type(exc).__name__}: {str(exc)[:120]}")
    finally:
        if server is not None:
            server.stop()


def _not_available(report: Report, why: str) -> None:
    report.add(Row("-", "tus upload, 5 MB photos in 1 MB chunks", None, "MB/s", note=NA))
    report.add(Row("-", "peak RSS uploading a 50 MB photo, above idle", None, "MB", note=NA))
    report.targets.append(
        Target("-", "peak memory above idle, 50 MB upload", None, "< 100 MB", None)
    )
    report.notes.append(f"uploads: {why}")


class _Unavailable(Exception):
    pass


class _Server:
    """A real gunicorn with one sync worker over its own SQLite database."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "server"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> None:
        from fieldsync.demo import load_demo
        from fieldsync.identity.service import password_hasher
        from fieldsync.migrate import upgrade

        url = f"sqlite:///{self.data / 'fieldsync.db'}"
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
            self.log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
