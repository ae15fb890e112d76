"""Structured logging: JSON in containers, readable console output on a terminal, never secrets.

Reconcile workers bind ``controller``, ``key`` and ``reconcile_id`` with structlog's contextvars, so
every line logged during a reconcile (by any module) carries them without passing loggers around.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|authorization|api[_-]?key|credential|cookie", re.I)
REDACTED = "[redacted]"


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace values of secret-looking keys, also inside nested dicts, before anything is written."""
    for key in list(event):
        event[key] = _redact(key, event[key])
    return event


def _redact(key: str, value: Any) -> Any:
    if isinstance(key, str) and _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact(k, v) for k, v in value.items()}
    return value


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog (and route stdlib logging through it).

    ``fmt`` is ``json``, ``console`` or ``auto`` (console only when stdout is a terminal).
    """
    if fmt == "auto":
        fmt = "console" if sys.stdout.isatty() else "json"
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # The HTTP stack logs request bodies at DEBUG; those can hold tokens.
    for noisy in ("kubernetes_asyncio", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.INFO))


def get_logger(name: str | None = None, **bound: Any) -> Any:
    """A structlog logger; extra keyword arguments are bound to every line it writes."""
    return structlog.get_logger(name, **bound)
