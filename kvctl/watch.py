"""kvctl watch: follow a bucket's change feed (Server-Sent Events) and, after a dropped connection,
resume from the last revision seen (Last-Event-ID) with a growing back-off."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from kvctl.client import ApiClient, KVPaths
from kvctl.context import Context
from kvctl.errors import EXIT_INTERRUPTED, EXIT_OK, ApiError, CliError, ConnectionFailed
from kvctl.output import Output, format_tags, format_value

CHANGE_EVENTS = frozenset({"put", "delete", "expire", "purge"})
# Error codes after which resuming is pointless.
FINAL_ERRORS = frozenset({"bucket_not_found"})
# Answers worth waiting out once the stream has worked: the server is restarting or busy.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 15.0
# The server sends a heartbeat comment every 15 s: silence for much longer means a dead connection.
READ_TIMEOUT_SECONDS = 60.0


def pause(seconds: float) -> None:
    """The back-off wait (a module function so tests can replace it)."""
    time.sleep(seconds)


def events_of(response: httpx.Response) -> Iterator[ServerSentEvent]:
    """The events of one connection, decoded by httpx-sse (WHATWG HTML §9.2.6); a 200 that is not
    an event stream (a proxy's page) is an error, not something to retry."""
    try:
        yield from EventSource(response).iter_sse()
    except SSEError as exc:
        raise CliError(f"{response.request.url} did not answer with an event stream: {exc}") from exc


def revision_of(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def format_event(event: str, event_id: str | None, data: Any) -> str:
    """One human line per event: `<revision> <event> <key> = <value>`."""
    if not isinstance(data, dict):
        return f"{event_id or '-'} {event} {data}"
    revision = data.get("revision", event_id or "-")
    key = data.get("key")
    text = f"{revision} {event}"
    if key:  # a purge (the bucket was deleted) has no key
        text += f" {key}"
    if event == "purge":
        return text
    if "value" in data and event in ("put", "snapshot"):
        text += " = " + format_value(data.get("value"), data.get("encoding"))
    extras = []
    if data.get("version") is not None:
        extras.append(f"version {data['version']}")
    if data.get("ttl") not in (None, -1):
        extras.append(f"ttl {data['ttl']}s")
    if data.get("tags"):
        extras.append(f"tags {format_tags(data['tags'])}")
    if extras:
        text += f"  ({', '.join(extras)})"
    return text


class Watcher:
    """One `kvctl watch`: prints events until Ctrl-C (or --count events), reconnecting as needed."""

    def __init__(
        self,
        client: ApiClient,
        out: Output,
        paths: KVPaths,
        *,
        key: str | None = None,
        prefix: str | None = None,
        since: int | None = None,
        snapshot: bool = False,
        include_values: bool = True,
        count: int | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.out = out
        self.path = paths.watch()
        self.filters = {name: value for name, value in (("key", key), ("prefix", prefix)) if value}
        if snapshot:
            self.filters["snapshot"] = "true"
        if not include_values:
            self.filters["include_values"] = "false"
        self.since = since
        self.count = count
        self.sleep = sleep or pause
        self.printed = 0
        self.last_revision: int | None = None
        self.retry_ms: int | None = None  # the server's `retry:` advice

    def request_args(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Query and headers of the next connection: resume after the last revision seen."""
        params: dict[str, Any] = dict(self.filters)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_revision is not None:
            headers["Last-Event-ID"] = str(self.last_revision)
            params.pop("snapshot", None)  # the snapshot was already shown; only the changes since
        elif self.since is not None:
            params["since"] = self.since
        return params, headers

    def run(self) -> int:
        connected_once = False
        failures = 0
        resumed_at_once = False  # one immediate reconnect (token rotated) per working connection
        while True:
            params, headers = self.request_args()
            timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_SECONDS)
            try:
                response = self.client.open_stream("GET", self.path, params=params, headers=headers, timeout=timeout)
            except ConnectionFailed as exc:
                if not connected_once:
                    raise
                reason = exc.message
            except ApiError as exc:
                if not (connected_once and exc.status in RETRY_STATUSES):
                    raise
                reason = exc.message
            else:
                connected_once = True
                before = self.printed
                try:
                    outcome, reason = self.consume(response)
                except (httpx.TransportError, httpx.StreamError) as exc:
                    outcome, reason = "lost", str(exc) or exc.__class__.__name__
                finally:
                    response.close()
                if outcome == "done":
                    return EXIT_OK
                if self.printed > before:
                    failures = 0  # the connection worked: start the back-off afresh
                    resumed_at_once = False
                if outcome == "now" and not resumed_at_once:
                    resumed_at_once = True
                    continue
            delay = self.backoff(failures)
            failures += 1
            resume = f"revision {self.last_revision}" if self.last_revision is not None else "live changes"
            self.out.note(f"watch: connection lost ({reason}); reconnecting in {delay:.1f}s from {resume}")
            self.sleep(delay)

    def backoff(self, failures: int) -> float:
        base = INITIAL_BACKOFF_SECONDS
        if self.retry_ms is not None:
            base = max(base, self.retry_ms / 1000)
        delay = min(MAX_BACKOFF_SECONDS, base * 2**failures)
        jittered: float = delay * random.uniform(0.8, 1.2)  # jitter: many watchers do not reconnect in lockstep
        return jittered

    def consume(self, response: httpx.Response) -> tuple[str, str]:
        """Print the events of one connection; returns (outcome, reason): done | now | lost."""
        for event in events_of(response):
            if event.retry is not None:
                self.retry_ms = event.retry
            try:
                data = json.loads(event.data) if event.data else None
            except ValueError:
                data = event.data
            revision = revision_of(event.id)
            already_seen = revision is not None and self.last_revision is not None and revision <= self.last_revision
            if event.event in CHANGE_EVENTS and already_seen:
                continue  # printed before the reconnect
            if revision is not None and (self.last_revision is None or revision > self.last_revision):
                self.last_revision = revision
            if event.event == "message" and not event.data:
                continue  # an id without data (the heartbeat after filtered-out changes): only moved the position
            if event.event == "error":
                return self.on_error(data)
            self.show(event, data)
            if event.event in CHANGE_EVENTS or event.event == "snapshot":
                self.printed += 1
            if event.event == "purge":
                self.out.note("watch: the bucket was deleted")
                return "done", ""
            if self.count is not None and self.printed >= self.count:
                return "done", ""
        return "lost", "the server closed the stream"

    def on_error(self, data: Any) -> tuple[str, str]:
        """The server ended the stream with an error event: resume where it says, or give up."""
        info = data if isinstance(data, dict) else {"detail": str(data)}
        code = str(info.get("code") or "")
        detail = str(info.get("detail") or info.get("message") or info.get("title") or "error")
        if self.out.json_mode:
            self.out.event({"event": "error", "id": None, "data": info})
        if code in FINAL_ERRORS:
            raise CliError(f"{detail} ({code})")
        resume_from = info.get("resume_from")
        if isinstance(resume_from, int) and not isinstance(resume_from, bool):
            self.last_revision = resume_from  # the server knows what it sent, filtered changes included
        if code in ("invalid_token", "token_expired", "unauthorized"):
            # The access token ran out mid-stream: rotate it and resume at once.
            self.client.refresh(stale_access_token=self.client.access_token())
            return "now", detail
        return "lost", f"{detail} ({code})" if code else detail

    def show(self, event: ServerSentEvent, data: Any) -> None:
        if self.out.json_mode:
            self.out.event({"event": event.event, "id": event.id or None, "data": data})
        elif event.event == "ready":
            info = data if isinstance(data, dict) else {}
            why = " (the revision asked for is no longer kept)" if info.get("reason") == "trimmed" else ""
            at = f" at revision {info.get('revision', event.id)}"
            self.out.note(f"watch: snapshot of {info.get('entries', '?')} entries{at}{why}; following changes")
        else:
            self.out.line(format_event(event.event, event.id, data))


def cmd_watch(ctx: Context) -> int:
    args = ctx.args
    watcher = Watcher(
        ctx.client,
        ctx.out,
        ctx.paths,
        key=args.key,
        prefix=args.prefix,
        since=args.since,
        snapshot=args.snapshot,
        include_values=not args.no_values,
        count=args.count,
    )
    try:
        return watcher.run()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED  # Ctrl-C ends a watch cleanly (no traceback), with the shell's 130
