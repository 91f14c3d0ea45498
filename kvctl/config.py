"""Where kvctl keeps its sessions: one JSON file (mode 0600) holding the tokens of each server URL."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from kvctl.errors import CliError

CONFIG_ENV = "KVCTL_CONFIG"
URL_ENV = "KVCTL_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
# How long a kvctl waits for another one that holds the session file's lock (a refresh takes one request).
LOCK_TIMEOUT_SECONDS = 60.0


def config_path() -> Path:
    """$KVCTL_CONFIG, else $XDG_CONFIG_HOME/kvctl/config.json, else ~/.config/kvctl/config.json."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kvctl" / "config.json"


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url


@dataclass
class Session:
    """The tokens of one user on one server; ``expires_at`` is the access token's expiry (epoch seconds)."""

    username: str
    access_token: str
    refresh_token: str
    expires_at: float
    tenant_id: str | None = None


class ConfigStore:
    """Sessions are keyed by server URL so a token is only ever sent to the server that issued it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CliError(f"cannot read config file {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"config file {self.path} is not valid JSON; fix or delete it") from exc
        return data if isinstance(data, dict) else {}

    def save(self, data: dict[str, Any]) -> None:
        """Atomic write; the file is created 0600 so the tokens are never readable by others."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".config-", dir=self.path.parent)  # mkstemp creates 0600
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(data, handle, indent=2, sort_keys=True)
                    handle.write("\n")
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CliError(f"cannot write config file {self.path}: {exc.strerror}") from exc

    @contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock between kvctl processes (a refresh token may be used only once), on
        POSIX and Windows alike (filelock: flock, or msvcrt's locking)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = FileLock(lock_path, timeout=LOCK_TIMEOUT_SECONDS, mode=0o600)
            lock.acquire()
        except Timeout as exc:
            raise CliError(
                f"another kvctl holds the lock {lock_path} for more than {LOCK_TIMEOUT_SECONDS:g} s; "
                "if none is running, delete that file"
            ) from exc
        except OSError as exc:
            raise CliError(f"cannot lock config file {self.path}: {exc.strerror}") from exc
        try:
            yield
        finally:
            lock.release()

    def session(self, url: str) -> Session | None:
        raw = self.load().get("servers", {}).get(normalize_url(url))
        if not isinstance(raw, dict):
            return None
        try:
            return Session(**raw)
        except TypeError:
            return None

    def set_session(self, url: str, session: Session) -> None:
        data = self.load()
        data.setdefault("servers", {})[normalize_url(url)] = asdict(session)
        data["current_url"] = normalize_url(url)
        self.save(data)

    def remove_session(self, url: str) -> Session | None:
        data = self.load()
        raw = data.get("servers", {}).pop(normalize_url(url), None)
        if raw is None:
            return None
        self.save(data)
        try:
            return Session(**raw)
        except TypeError:
            return None

    def current_url(self) -> str | None:
        url = self.load().get("current_url")
        return url if isinstance(url, str) and url else None


def resolve_url(explicit: str | None, store: ConfigStore) -> str:
    """--url, else $KVCTL_URL, else the server of the last login, else the local default."""
    return normalize_url(explicit or os.environ.get(URL_ENV) or store.current_url() or DEFAULT_URL)
