"""Streaming digests for evidence bytes: constant memory whatever the file size."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1 << 20

# tus `Upload-Checksum` names the algorithm in lowercase; these are the ones we accept.
SUPPORTED_ALGORITHMS = frozenset({"sha256", "sha1"})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(value: str) -> bool:
    """True for exactly 64 lowercase hex digits, the one spelling of a blob key."""
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


class StreamingHasher:
    """Incremental digest: sha256 for evidence keys, sha1 for tus clients that only have that."""

    __slots__ = ("_algorithm", "_hash", "_bytes_seen")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._bytes_seen = 0

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def bytes_seen(self) -> int:
        return self._bytes_seen

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self._bytes_seen += len(data)

    def update_from(self, fileobj: BinaryIO, *, chunk: int = CHUNK_SIZE) -> int:
        """Read `fileobj` to its end through the digest; returns the number of bytes read."""
        before = self._bytes_seen
        for block in iter_chunks(fileobj, chunk=chunk):
            self.update(block)
        return self._bytes_seen - before

    def copy(self) -> StreamingHasher:
        clone = StreamingHasher.__new__(StreamingHasher)
        clone._algorithm = self._algorithm
        clone._hash = self._hash.copy()
        clone._bytes_seen = self._bytes_seen
        return clone

    def digest(self) -> bytes:
        return self._hash.digest()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def b64digest(self) -> str:
        """Base64 of the raw digest: the form tus `Upload-Checksum` carries."""
        return base64.b64encode(self._hash.digest()).decode("ascii")


def iter_chunks(fileobj: BinaryIO, *, chunk: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield successive reads of at most `chunk` bytes until EOF."""
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    while True:
        block = fileobj.read(chunk)
        if not block:
            return
        yield block


def sha256_stream(fileobj: BinaryIO, *, chunk: int = CHUNK_SIZE) -> str:
    """Lowercase hex SHA-256 of everything left in `fileobj`."""
    hasher = StreamingHasher("sha256")
    hasher.update_from(fileobj, chunk=chunk)
    return hasher.hexdigest()


def sha256_file(path: Path | str, chunk: int = CHUNK_SIZE) -> str:
    """Lowercase hex SHA-256 of a file, read in `chunk`-sized pieces into one reused buffer."""
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    hasher = hashlib.sha256()
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            hasher.update(view[:n])
    return hasher.hexdigest()
