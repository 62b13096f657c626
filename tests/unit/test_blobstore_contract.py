"""One contract for every BlobStore: the filesystem in a temporary directory and S3 against a local
moto server this session starts (skipped, with the reason shown, only when it cannot start)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fieldsync.evidence.blobstore import (
    BlobHashMismatchError,
    BlobNotFoundError,
    BlobStore,
    FilesystemBlobStore,
    InvalidBlobKeyError,
    S3BlobStore,
    blobstore_from_url,
    local_copy,
    verify_blob,
)

MB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the stores ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free local port, for the whole session."""
    try:
        from moto.server import ThreadedMotoServer
    except Exception as exc:  # moto[server] missing or broken in this environment
        pytest.skip(f"S3 contract tests skipped: cannot import moto.server ({exc!r})")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    # start() waits forever if the server thread dies (e.g. no socket allowed): bound the wait.
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(timeout=15)
    if starter.is_alive():
        pytest.skip("S3 contract tests skipped: moto server did not start within 15 s")
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="fieldsync-test",
        aws_secret_access_key="fieldsync-test",
    )


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    bucket = "fieldsync-evidence-test"
    try:
        _s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    except Exception as exc:
        pytest.skip(f"S3 contract tests skipped: cannot create a bucket on moto ({exc!r})")
    return bucket


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    # A fresh prefix per test keeps tests apart on one shared server.
    return S3BlobStore(
        _s3_client(endpoint), bucket, prefix=f"t-{uuid.uuid4().hex}", spool_dir=tmp_path
    )


def stored_names(store: BlobStore) -> list[str]:
    """Everything the store holds, temporary files included: proof that nothing was left behind."""
    if isinstance(store, FilesystemBlobStore):
        if not store.root.exists():
            return []
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3BlobStore)
    listing = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def read_all(store: BlobStore, key: str) -> bytes:
    with store.open(key) as f:
        return f.read()


# --- the contract -------------------------------------------------------------------------


def test_round_trip_put_stream(store: BlobStore):
    assert isinstance(store, BlobStore)
    data = b"\xff\xd8\xff evidence bytes \x00\x01" * 1000
    key = sha(data)
    assert not store.exists(key)
    assert store.put_stream(key, io.BytesIO(data)) is True
    assert store.exists(key)
    assert store.size(key) == len(data)
    assert read_all(store, key) == data
    assert verify_blob(store, key)
    assert key in store.path_hint(key)


def test_round_trip_put_file(store: BlobStore, tmp_path: Path):
    src = tmp_path / "photo.jpg"
    src.write_bytes(os.urandom(100_000))
    key = sha(src.read_bytes())
    assert store.put_file(key, src) is True
    assert read_all(store, key) == src.read_bytes()
    assert src.exists(), "the source is copied, never moved or changed"


def test_empty_blob(store: BlobStore):
    key = sha(b"")
    assert store.put_stream(key, io.BytesIO(b"")) is True
    assert store.size(key) == 0
    assert read_all(store, key) == b""


def test_put_is_idempotent_and_does_not_read_the_source_again(store: BlobStore):
    data = b"same photo from two devices"
    key = sha(data)
    assert store.put_stream(key, io.BytesIO(data)) is True
    again = io.BytesIO(data)
    assert store.put_stream(key, again) is False
    assert again.tell() == 0, "an existing blob needs no bytes"
    assert read_all(store, key) == data
    assert len(stored_names(store)) == 1


def test_hash_mismatch_stores_nothing(store: BlobStore, tmp_path: Path):
    declared = sha(b"what the phone hashed")
    with pytest.raises(BlobHashMismatchError) as caught:
        store.put_stream(declared, io.BytesIO(b"what arrived"))
    assert caught.value.expected == declared
    assert caught.value.actual == sha(b"what arrived")
    assert caught.value.size == len(b"what arrived")

    src = tmp_path / "other.jpg"
    src.write_bytes(b"other bytes")
    with pytest.raises(BlobHashMismatchError):
        store.put_file(declared, src)

    assert not store.exists(declared)
    assert stored_names(store) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_missing_blob(store: BlobStore):
    key = sha(b"never stored")
    assert not store.exists(key)
    with pytest.raises(BlobNotFoundError):
        store.size(key)
    with pytest.raises(BlobNotFoundError):
        store.open(key)
    assert store.delete(key) is False


def test_delete(store: BlobStore):
    data = b"a thumbnail"
    key = sha(data)
    store.put_stream(key, io.BytesIO(data))
    assert store.delete(key) is True
    assert not store.exists(key)
    assert store.put_stream(key, io.BytesIO(data)) is True


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "../../etc/passwd",
        sha(b"x").upper(),
        sha(b"x")[:-1],
        sha(b"x")[:-2] + "/x",
        "../" + sha(b"x")[3:],
    ],
)
def test_keys_other_than_lowercase_sha256_hex_are_refused(store: BlobStore, bad_key: str):
    for call in (
        lambda: store.exists(bad_key),
        lambda: store.size(bad_key),
        lambda: store.open(bad_key),
        lambda: store.delete(bad_key),
        lambda: store.put_stream(bad_key, io.BytesIO(b"x")),
    ):
        with pytest.raises(InvalidBlobKeyError):
            call()
    assert stored_names(store) == []


def test_concurrent_puts_of_one_blob(store: BlobStore):
    if isinstance(store, S3BlobStore):
        pytest.skip(
            "moto's in-memory S3 is not safe for concurrent PUTs of one key (its etag reads a "
            "buffer another PUT closed: ValueError in moto/s3/models.py); real S3 is"
        )
    data = os.urandom(2 * MB)
    key = sha(data)
    barrier = threading.Barrier(8)

    def put() -> bool:
        barrier.wait()
        return store.put_stream(key, io.BytesIO(data))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: put(), range(8)))
    assert any(results)
    assert read_all(store, key) == data
    assert stored_names(store) == [n for n in stored_names(store) if n.endswith(key)]
    assert len(stored_names(store)) == 1


def test_concurrent_puts_of_different_blobs(store: BlobStore):
    blobs = [os.urandom(50_000) for _ in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(lambda b: store.put_stream(sha(b), io.BytesIO(b)), blobs))
    for blob in blobs:
        assert read_all(store, sha(blob)) == blob


def test_a_30_mb_file_streams_through(store: BlobStore, tmp_path: Path):
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(30):
            block = os.urandom(MB)
            f.write(block)
            digest.update(block)
    key = digest.hexdigest()

    tracemalloc.start()
    try:
        assert store.put_file(key, src) is True
        read_back = hashlib.sha256()
        with store.open(key) as f:
            while block := f.read(MB):
                read_back.update(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.size(key) == 30 * MB
    assert read_back.hexdigest() == key
    if isinstance(store, FilesystemBlobStore):
        assert peak < 10 * MB, f"peak {peak / MB:.1f} MB while storing and reading 30 MB"


def test_local_copy_gives_a_readable_path(store: BlobStore, tmp_path: Path):
    data = b"bytes Pillow wants as a file"
    key = sha(data)
    store.put_stream(key, io.BytesIO(data))
    with local_copy(store, key, tmp_dir=tmp_path) as path:
        assert path.read_bytes() == data
    if isinstance(store, S3BlobStore):
        assert not path.exists(), "the temporary copy is removed"
    else:
        assert path.exists(), "the filesystem store hands out the blob itself"


# --- store-specific details ---------------------------------------------------------------


def test_filesystem_layout_and_read_only_blobs(tmp_path: Path):
    store = FilesystemBlobStore(tmp_path / "blobs")
    data = b"layout"
    key = sha(data)
    store.put_stream(key, io.BytesIO(data))
    path = tmp_path / "blobs" / key[:2] / key[2:4] / key
    assert path.read_bytes() == data
    assert store.local_path(key) == path
    assert store.path_hint(key) == str(path)
    assert path.stat().st_mode & 0o222 == 0, "evidence files are read-only"
    assert store.local_path(sha(b"other")) is None


def test_verify_blob_notices_bit_rot(tmp_path: Path):
    store = FilesystemBlobStore(tmp_path / "blobs")
    data = b"archived evidence"
    key = sha(data)
    store.put_stream(key, io.BytesIO(data))
    path = store.local_path(key)
    assert path is not None and verify_blob(store, key)
    path.chmod(0o644)
    path.write_bytes(b"archived evidencE")
    assert not verify_blob(store, key)


def test_filesystem_failure_while_reading_leaves_no_temporary_file(tmp_path: Path):
    store = FilesystemBlobStore(tmp_path / "blobs")

    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise ConnectionResetError("client went away")
            return b"x" * 1000

    with pytest.raises(ConnectionResetError):
        store.put_stream(sha(b"x" * 3000), Broken())
    assert stored_names(store) == []


def test_s3_object_layout(s3_endpoint: str, s3_bucket: str):
    store = S3BlobStore(_s3_client(s3_endpoint), s3_bucket, prefix="/evidence/")
    data = b"layout"
    key = sha(data)
    store.put_stream(key, io.BytesIO(data))
    object_key = f"evidence/{key[:2]}/{key[2:4]}/{key}"
    head = store.client.head_object(Bucket=s3_bucket, Key=object_key)
    assert head["Metadata"] == {"sha256": key}
    assert store.path_hint(key) == f"s3://{s3_bucket}/{object_key}"
    assert store.local_path(key) is None
    store.delete(key)


# --- configuration ------------------------------------------------------------------------


def test_from_url_defaults_to_the_data_directory(tmp_path: Path):
    store = blobstore_from_url("", tmp_path)
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "blobs"


def test_from_url_file(tmp_path: Path):
    store = blobstore_from_url(f"file://{tmp_path}/my%20blobs", tmp_path / "unused")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "my blobs"


@pytest.mark.parametrize(
    "url",
    ["file:relative/path", "file://host/abs", "ftp://x/y", "s3:///nobucket", "s3://b/p?colour=red"],
)
def test_from_url_refuses_what_it_cannot_honour(url: str, tmp_path: Path):
    with pytest.raises(ValueError):
        blobstore_from_url(url, tmp_path)


def test_from_url_s3_talks_to_the_endpoint(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fieldsync-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fieldsync-test")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    url = f"s3://{s3_bucket}/from-url?endpoint_url={s3_endpoint}&region=us-east-1&addressing_style=path"
    store = blobstore_from_url(url, tmp_path)
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == (s3_bucket, "from-url/")
    data = b"via url"
    assert store.put_stream(sha(data), io.BytesIO(data)) is True
    assert read_all(store, sha(data)) == data
    store.delete(sha(data))
