"""Streaming digests: the same answers as hashlib over the whole bytes, in constant memory."""

from __future__ import annotations

import base64
import hashlib
import io
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldsync.evidence.hashing import (
    StreamingHasher,
    is_sha256_hex,
    iter_chunks,
    sha256_file,
    sha256_stream,
)

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
ABC_SHA1 = "a9993e364706816aba3e25717850c26c9cd0d89d"


def test_known_vectors(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    abc = tmp_path / "abc"
    abc.write_bytes(b"abc")
    assert sha256_file(empty) == EMPTY_SHA256
    assert sha256_file(abc) == ABC_SHA256
    assert sha256_stream(io.BytesIO(b"abc")) == ABC_SHA256

    sha1 = StreamingHasher("sha1")
    sha1.update(b"a")
    sha1.update(memoryview(b"bc"))
    assert sha1.hexdigest() == ABC_SHA1
    assert sha1.algorithm == "sha1"
    assert sha1.bytes_seen == 3


def test_b64digest_is_the_tus_upload_checksum_form():
    hasher = StreamingHasher("sha256")
    hasher.update(b"abc")
    assert hasher.b64digest() == base64.b64encode(bytes.fromhex(ABC_SHA256)).decode()
    assert hasher.digest() == bytes.fromhex(ABC_SHA256)


def test_copy_forks_the_state():
    hasher = StreamingHasher()
    hasher.update(b"ab")
    fork = hasher.copy()
    fork.update(b"c")
    assert fork.hexdigest() == ABC_SHA256
    assert hasher.hexdigest() == hashlib.sha256(b"ab").hexdigest()
    assert (hasher.bytes_seen, fork.bytes_seen) == (2, 3)


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError):
        StreamingHasher("md5")


@pytest.mark.parametrize("chunk", [0, -1])
def test_chunk_must_be_positive(tmp_path, chunk):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ValueError):
        sha256_file(path, chunk=chunk)
    with pytest.raises(ValueError):
        list(iter_chunks(io.BytesIO(b"x"), chunk=chunk))


@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=700))
def test_chunking_never_changes_the_digest(data, chunk):
    expected256 = hashlib.sha256(data).hexdigest()
    assert sha256_stream(io.BytesIO(data), chunk=chunk) == expected256
    for algorithm in ("sha256", "sha1"):
        hasher = StreamingHasher(algorithm)
        assert hasher.update_from(io.BytesIO(data), chunk=chunk) == len(data)
        assert hasher.hexdigest() == hashlib.new(algorithm, data).hexdigest()


def test_sha256_file_on_chunk_boundaries(tmp_path):
    for size in (0, 1, 1023, 1024, 1025, 4096):
        path = tmp_path / f"f{size}"
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        path.write_bytes(data)
        assert sha256_file(path, chunk=1024) == hashlib.sha256(data).hexdigest()


def test_is_sha256_hex():
    assert is_sha256_hex(EMPTY_SHA256)
    assert not is_sha256_hex(EMPTY_SHA256.upper())
    assert not is_sha256_hex(EMPTY_SHA256[:-1])
    assert not is_sha256_hex(EMPTY_SHA256 + "0")
    assert not is_sha256_hex("../" + EMPTY_SHA256[3:])
    assert not is_sha256_hex(EMPTY_SHA256[:-1] + "\n")


def test_hashing_a_big_file_keeps_memory_flat(tmp_path):
    path = tmp_path / "big"
    block = b"\xa5" * (1 << 20)
    expected = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(30):
            f.write(block)
            expected.update(block)
    del block

    tracemalloc.start()
    try:
        digest = sha256_file(path)
        with open(path, "rb") as f:
            streamed = sha256_stream(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == streamed == expected.hexdigest()
    assert peak < 4 << 20, f"peak {peak} bytes while hashing 30 MB"
