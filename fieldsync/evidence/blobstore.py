"""Evidence bytes (证据原件) behind one interface, content-addressed by lowercase hex SHA-256."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.exceptions import ClientError

from fieldsync.evidence.hashing import CHUNK_SIZE, StreamingHasher, is_sha256_hex, iter_chunks


class BlobError(Exception):
    """Base of the store's own failures (not domain problems: callers map them)."""


class InvalidBlobKeyError(BlobError, ValueError):
    """The key is not 64 lowercase hex digits; refusing it also keeps `../` out of paths."""


class BlobNotFoundError(BlobError, LookupError):
    def __init__(self, sha256: str) -> None:
        super().__init__(f"no blob {sha256}")
        self.sha256 = sha256


class BlobHashMismatchError(BlobError, ValueError):
    """The bytes offered do not hash to the key they were offered under; nothing was stored."""

    def __init__(self, expected: str, actual: str, size: int) -> None:
        super().__init__(f"bytes hash to {actual}, not {expected} ({size} bytes)")
        self.expected = expected
        self.actual = actual
        self.size = size


@runtime_checkable
class BlobStore(Protocol):
    """Immutable blobs named by the SHA-256 of their bytes.

    `put_*` verify the bytes against the key while reading them and store nothing on a
    mismatch; they return True when the blob was stored now and False when it already was
    (then the source is not read at all). Derivatives are blobs like any other, under their
    own hash.
    """

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def put_file(self, sha256: str, src_path: Path | str) -> bool: ...

    def put_stream(self, sha256: str, fileobj: BinaryIO) -> bool: ...

    def delete(self, sha256: str) -> bool: ...

    def path_hint(self, sha256: str) -> str: ...

    def local_path(self, sha256: str) -> Path | None: ...


def _key(sha256: str) -> str:
    if not is_sha256_hex(sha256):
        raise InvalidBlobKeyError(f"blob key must be 64 lowercase hex digits, got {sha256!r}")
    return sha256


def _shard(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- filesystem -------------------------------------------------------------------------------


class FilesystemBlobStore:
    """Blobs as read-only files at `root/ab/cd/<sha256>`, written to a temporary name and renamed.

    A crash leaves either the whole blob or nothing under its name (stray `.tmp` files at worst);
    concurrent puts of one blob each write their own temporary file and the last rename wins with
    identical bytes.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    def _path(self, sha256: str) -> Path:
        return self.root / _shard(_key(sha256))

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(sha256) from None

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self._path(sha256), "rb")  # the caller closes it
        except FileNotFoundError:
            raise BlobNotFoundError(sha256) from None

    def put_file(self, sha256: str, src_path: Path | str) -> bool:
        if self.exists(sha256):
            return False
        with open(src_path, "rb") as src:
            return self.put_stream(sha256, src)

    def put_stream(self, sha256: str, fileobj: BinaryIO) -> bool:
        final = self._path(sha256)
        if final.is_file():
            return False
        self._make_dirs(final.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{sha256[:16]}.", suffix=".tmp", dir=final.parent)
        tmp = Path(tmp_name)
        try:
            hasher = StreamingHasher("sha256")
            with os.fdopen(fd, "wb") as out:
                for block in iter_chunks(fileobj):
                    hasher.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            actual = hasher.hexdigest()
            if actual != sha256:
                raise BlobHashMismatchError(sha256, actual, hasher.bytes_seen)
            # Evidence is never modified in place: the file itself says so.
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return True

    def delete(self, sha256: str) -> bool:
        try:
            self._path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def path_hint(self, sha256: str) -> str:
        return str(self._path(sha256))

    def local_path(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None

    def _make_dirs(self, directory: Path) -> None:
        """mkdir -p, fsyncing each parent whose entries changed so the new path survives a crash."""
        missing: list[Path] = []
        probe = directory
        while not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue  # another writer made it first
            _fsync_dir(path.parent)


# --- S3 ---------------------------------------------------------------------------------------


def _is_not_found(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in {"404", "NoSuchKey", "NotFound"} or status == 404


class _KeepOpen:
    """A read-only view of a file that ignores close(), so a retry can seek back to 0."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class S3BlobStore:
    """Blobs as objects `<prefix>ab/cd/<sha256>` in one bucket of an S3-compatible service.

    S3 has no rename, so bytes are verified before anything is sent: a stream is spooled to a
    local temporary file while hashed, a file is hashed in place. The upload then carries the
    SHA-256 as `ChecksumSHA256`, so the service itself refuses bytes that changed on the way.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        spool_dir: Path | str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, sha256: str) -> str:
        return self.prefix + _shard(_key(sha256))

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._object_key(sha256))
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFoundError(sha256)
        return int(head["ContentLength"])

    def open(self, sha256: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(sha256))
        except Exception as exc:
            if _is_not_found(exc):
                raise BlobNotFoundError(sha256) from None
            raise
        return response["Body"]  # botocore StreamingBody: read(n), iter_chunks(), close()

    def put_file(self, sha256: str, src_path: Path | str) -> bool:
        if self.exists(sha256):
            return False
        hasher = StreamingHasher("sha256")
        with open(src_path, "rb") as src:
            hasher.update_from(src)
            if hasher.hexdigest() != sha256:
                raise BlobHashMismatchError(sha256, hasher.hexdigest(), hasher.bytes_seen)
            src.seek(0)
            self._upload(sha256, src, hasher)
        return True

    def put_stream(self, sha256: str, fileobj: BinaryIO) -> bool:
        if self.exists(sha256):
            return False
        hasher = StreamingHasher("sha256")
        with tempfile.TemporaryFile(dir=self.spool_dir) as spool:
            for block in iter_chunks(fileobj):
                hasher.update(block)
                spool.write(block)
            if hasher.hexdigest() != sha256:
                raise BlobHashMismatchError(sha256, hasher.hexdigest(), hasher.bytes_seen)
            spool.flush()
            spool.seek(0)
            self._upload(sha256, spool, hasher)
        return True

    def _upload(self, sha256: str, body: BinaryIO, hasher: StreamingHasher) -> None:
        # botocore's HTTP layer may close the body after a failed attempt and then retry
        # from it (seen with concurrent writers): keep our file open, it is closed by its owner
        body = _KeepOpen(body)  # type: ignore[assignment]
        # One PutObject (up to 5 GB, far above any photo) so the service checks the whole-object
        # SHA-256; a multipart upload could only check each part.
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._object_key(sha256),
            Body=body,
            ContentLength=hasher.bytes_seen,
            ContentType="application/octet-stream",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
            Metadata={"sha256": sha256},
        )

    def delete(self, sha256: str) -> bool:
        if not self.exists(sha256):
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(sha256))
        return True

    def path_hint(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(sha256)}"

    def local_path(self, sha256: str) -> Path | None:
        _key(sha256)
        return None


# --- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def local_copy(
    store: BlobStore, sha256: str, *, tmp_dir: Path | str | None = None
) -> Iterator[Path]:
    """A path to the blob's bytes for code that needs a file (Pillow): the blob itself when the
    store is local, else a temporary copy streamed from the store and removed afterwards."""
    path = store.local_path(sha256)
    if path is not None:
        yield path
        return
    fd, name = tempfile.mkstemp(prefix=f"{sha256[:16]}.", suffix=".blob", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out, contextlib.closing(store.open(sha256)) as src:
            shutil.copyfileobj(src, out, CHUNK_SIZE)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def verify_blob(store: BlobStore, sha256: str) -> bool:
    """Whether the stored bytes still hash to their key (an audit of the archive, streaming)."""
    hasher = StreamingHasher("sha256")
    with contextlib.closing(store.open(sha256)) as f:
        hasher.update_from(f)
    return hasher.hexdigest() == sha256


def blobstore_from_url(url: str | None, data_dir: Path | str) -> BlobStore:
    """The store a `FIELDSYNC_BLOBSTORE_URL` names.

    - empty: the filesystem under `data_dir/blobs`
    - `file:///abs/path`: the filesystem at that absolute path
    - `s3://bucket/prefix?endpoint_url=http://host:9000&region=cn-north-1&addressing_style=path`:
      S3 or a compatible service; credentials come from the usual AWS environment variables
      (or any other source boto3 reads).
    """
    if not url:
        return FilesystemBlobStore(Path(data_dir) / "blobs")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL must not name a host: {url!r}")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            raise ValueError(f"file URL must hold an absolute path: {url!r}")
        return FilesystemBlobStore(path)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"s3 URL must name a bucket: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint_url", "region", "addressing_style"}
        if unknown:
            raise ValueError(f"unknown s3 URL parameters {sorted(unknown)} in {url!r}")
        import boto3
        from botocore.config import Config as BotoConfig

        client = boto3.client(
            "s3",
            endpoint_url=query.get("endpoint_url"),
            region_name=query.get("region"),
            config=BotoConfig(s3={"addressing_style": query.get("addressing_style", "auto")}),
        )
        return S3BlobStore(client, parts.netloc, unquote(parts.path))
    raise ValueError(f"unsupported blob store URL {url!r}: use file:///path or s3://bucket/prefix")
