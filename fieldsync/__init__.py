"""fieldsync: the server that street enforcement officers' phones sync with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Any = None) -> Flask:
    """The Flask application (imported lazily: the domain packages and the device client
    must stay importable without the web stack)."""
    from fieldsync.api.app import create_app as _create_app

    return _create_app(config)
