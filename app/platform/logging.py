"""JSON (or text) log lines on stdout carrying the request id and tenant id.

Every JSON line has ``timestamp``, ``level``, ``logger``, ``message``, ``request_id`` and ``tenant_id``
(null outside a request); the access line of each request adds ``route`` (the route template),
``method``, ``status`` and ``duration_ms``. ``LOG_FORMAT=text`` gives one human-readable line instead.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from app.config import Settings, unknown_settings
from app.platform.context import request_id_var, tenant_id_var
from app.platform.jsonutil import iso_ms

_EXTRA_FIELDS = ("route", "method", "status", "duration_ms", "task", "event")

# Credentials never reach a log line, whoever wrote it (uvicorn logs a WebSocket request line with its
# query string, so a watch URL's ?access_token=<JWT> would otherwise land in the API log).
_SECRET_PATTERNS = (
    # query parameters and form fields that carry credentials
    (
        re.compile(r"(?i)\b(access_token|refresh_token|token|api_key|apikey|password|signature|secret)=[^&\s\"']+"),
        r"\1=[redacted]",
    ),
    # JSON fields that carry credentials
    (
        re.compile(
            r'(?i)("(?:access_token|refresh_token|password|new_password|current_password|key|secret)"\s*:\s*)"[^"]*"'
        ),
        r'\1"[redacted]"',
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),  # any JWT
    (re.compile(r"\bkvs_[A-Za-z0-9_-]{8,}"), "kvs_[redacted]"),  # API keys
)


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced (tokens, API keys, passwords, signatures)."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": iso_ms(int(record.created * 1000)),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": request_id_var.get(),
            "tenant_id": tenant_id_var.get(),
        }
        for field in _EXTRA_FIELDS:
            if hasattr(record, field):  # passed in `extra` (None too: an access line always has a route key)
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exc_info"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = request_id_var.get() or "-"
        line = super().format(record)
        values = {field: getattr(record, field, None) for field in _EXTRA_FIELDS}
        extras = [f"{field}={value}" for field, value in values.items() if value is not None]
        tenant = tenant_id_var.get()
        if tenant:
            extras.append(f"tenant_id={tenant}")
        return redact(f"{line} {' '.join(extras)}" if extras else line)


def log_level(settings: Settings) -> str:
    """LOG_LEVEL in upper case; refuses a name logging does not know (a typo would hide every line)."""
    level = settings.log_level.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {settings.log_level!r}")
    return level


def log_format(settings: Settings) -> str:
    """``json`` or ``text``: LOG_FORMAT, or for ``auto`` text when stdout is a terminal."""
    if settings.log_format != "auto":
        return settings.log_format
    return "text" if sys.stdout.isatty() else "json"


def _formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if log_format(settings) == "json" else TextFormatter()


# Huey's lines for every task run (and every periodic enqueue): routine, so DEBUG, not INFO.
ROUTINE_HUEY_LINES = frozenset(
    {"Executing %s", "%s executed in %0.3fs", "Enqueueing periodic task %s.", "Added task %s to schedule, eta %s"}
)


class RoutineToDebug(logging.Filter):
    """On the root handler: Huey's routine INFO lines (by their format string) become DEBUG lines,
    written only when LOG_LEVEL is DEBUG."""

    def __init__(self, formats: frozenset[str], root: logging.Logger) -> None:
        super().__init__()
        self.formats = formats
        self.root = root

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith("huey") and record.msg in self.formats:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.root.isEnabledFor(logging.DEBUG)
        return True


def setup_logging(settings: Settings) -> None:
    """Route the root logger (and uvicorn's and Huey's) to stdout in the configured format; every
    logger follows LOG_LEVEL (uvicorn and huey_consumer set their own level otherwise)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_formatter(settings))
    root = logging.getLogger()
    handler.addFilter(RoutineToDebug(ROUTINE_HUEY_LINES, root))
    root.handlers[:] = [handler]
    root.setLevel(log_level(settings))
    for name in ("uvicorn", "uvicorn.error", "huey", "huey.consumer"):
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True
        library.setLevel(logging.NOTSET)
    # Our access line replaces uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True


def gunicorn_logconfig(settings: Settings) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: the master's own lines (boot, worker exits) in the same format."""
    formatter = type(_formatter(settings))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kvstore": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "kvstore", "stream": "ext://sys.stdout"}
        },
        "root": {"level": log_level(settings), "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": log_level(settings), "handlers": [], "propagate": True},
            # gunicorn's access log stays off: the app writes one access line per request.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def warn_unknown_settings() -> None:
    """One warning per variable of the environment or .env that looks like a setting but is none
    (a typo, or a setting of another system): it would otherwise be ignored without a word."""
    for name in unknown_settings():
        logging.getLogger("app.config").warning("%s is not a kvstore setting and is ignored", name)
