"""How a server process runs the app: gunicorn's settings module
(`gunicorn -c python:fieldsync.serving 'fieldsync:create_app()'`, as `make run` does)."""

from __future__ import annotations

import gc
from typing import Any


def settle_heap() -> None:
    """Once the app is built: move every object alive now (the app, its models, schemas and
    compiled statements: some 160,000) into the permanent generation, where the cyclic
    collector no longer scans them. Before, each full collection walked them all, about 100 ms
    in the middle of a request every few large pulls or pushes."""
    gc.collect()
    gc.freeze()


def post_worker_init(worker: Any) -> None:  # gunicorn hook: the worker has loaded the app
    settle_heap()
