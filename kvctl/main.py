"""kvctl's command line: the argument parser, and main() that turns every failure into one line."""

from __future__ import annotations

import argparse
import os
import sys

import httpx

from kvctl import api_keys, audit, auth, buckets, keys, lock, objects, presign, transfer, usage, watch, webhooks
from kvctl.client import DEFAULT_BUCKET
from kvctl.config import CONFIG_ENV, URL_ENV, ConfigStore, resolve_url
from kvctl.context import API_KEY_ENV, Context
from kvctl.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, CliError
from kvctl.output import Output
from kvctl.progress import parse_size

EPILOG = f"""\
environment: {URL_ENV} (server URL), {CONFIG_ENV} (config file, default ~/.config/kvctl/config.json),
{auth.PASSWORD_ENV} (password for login/register), {API_KEY_ENV} (an API key to use instead of the saved login).
exit codes: 0 ok, 1 the API refused the request (its problem detail and code are printed),
2 the server could not be reached or bad usage, 130 interrupted."""


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """On the top parser with real defaults; on each command with SUPPRESS, so that an option given
    after the command name overrides the top-level one and an absent one leaves it alone."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--url",
        default=default(None),
        help=f"API base URL (default: ${URL_ENV}, else the server of the last login, else http://127.0.0.1:8000)",
    )
    group.add_argument(
        "--bucket",
        default=default(DEFAULT_BUCKET),
        help="KV bucket (default: default, served by the flat /api/v1/kv API)",
    )
    group.add_argument(
        "--api-key",
        default=default(None),
        metavar="KEY",
        help=f"use this API key (kvs_...) instead of the saved login (default: ${API_KEY_ENV}; "
        "visible to other local users: prefer the variable)",
    )
    group.add_argument("--json", action="store_true", default=default(False), help="machine-readable JSON output")
    group.add_argument(
        "--timeout", type=positive_float, default=default(30.0), help="seconds to wait for the server (default 30)"
    )


def add_password_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--username")
    parser.add_argument(
        "-p", "--password", help=f"(visible to other local users: prefer --password-stdin or ${auth.PASSWORD_ENV})"
    )
    parser.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvctl",
        description="Command-line client of the kvstore HTTP API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version="kvctl 1.0.0")
    add_global_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, top=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, summary: str, handler: object, *, aliases: tuple[str, ...] = (), under: object = sub
    ) -> argparse.ArgumentParser:
        child = under.add_parser(  # type: ignore[attr-defined]
            name, help=summary, description=summary, parents=[common], aliases=list(aliases)
        )
        child.set_defaults(handler=handler)
        assert isinstance(child, argparse.ArgumentParser)
        return child

    p = command("register", "create an account and log in", auth.cmd_register)
    add_password_options(p)
    p.add_argument("-e", "--email")
    add_password_options(command("login", "log in and save the session", auth.cmd_login))
    p = command("logout", "revoke the session and forget its tokens", auth.cmd_logout)
    p.add_argument("--all", action="store_true", help="end every session of the account, on every machine")
    p = command("passwd", "change the password (every other session ends)", auth.cmd_passwd)
    p.add_argument(
        "-p",
        "--password",
        help=f"the current one (visible to other local users: prefer --password-stdin or ${auth.PASSWORD_ENV})",
    )
    p.add_argument("--new-password", help="the new one (visible to other local users: prefer --password-stdin)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the current password, then the new one, from stdin (a line each)",
    )
    command("whoami", "show the logged-in user", auth.cmd_whoami)
    command("token", "print a valid access token (for curl)", auth.cmd_token)

    p = command("put", "create or update a key", keys.cmd_put)
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE", nargs="?", help="JSON when it parses (42, true, {...}), else text")
    p.add_argument("--ttl", type=non_negative_int, help="seconds to live; 0 removes the expiry")
    p.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="repeatable")
    p.add_argument("--if-match", metavar="VERSION", help="write only if the key is at this version")
    p.add_argument("--create", action="store_true", help="write only if the key does not exist")
    p.add_argument("--file", metavar="PATH", help="read the value from a file (- for stdin)")
    p.add_argument("--base64", action="store_true", help="store the bytes as a binary (base64) value")
    p.add_argument("--string", action="store_true", help="store VALUE as a string even if it parses as JSON")

    p = command("get", "print a key's value", keys.cmd_get)
    p.add_argument("key", metavar="KEY")
    p.add_argument("--revision", type=positive_int, help="a past revision, while history keeps it")
    p.add_argument("-o", "--output", metavar="PATH", help="write the value to a file")

    p = command("delete", "delete a key", keys.cmd_delete)
    p.add_argument("key", metavar="KEY")
    p.add_argument("--if-match", metavar="VERSION", help="delete only if the key is at this version")

    p = command("list", "list keys in key order", keys.cmd_list, aliases=("all",))
    p.add_argument("--prefix")
    p.add_argument("--tag", action="append", default=[], metavar="NAME:VALUE", help="repeatable; all must match")
    p.add_argument("--limit", type=positive_int, help="keys per page")
    p.add_argument("--cursor", help="continue from a previous page's next_cursor")
    p.add_argument("--all-pages", action="store_true", help="follow next_cursor to the end")
    p.add_argument("-q", "--keys-only", action="store_true", help="print key names only")

    p = command("history", "past revisions of a key, newest first", keys.cmd_history)
    p.add_argument("key", metavar="KEY")
    p.add_argument("--limit", type=positive_int)

    p = command("watch", "print changes as they happen (Ctrl-C stops)", watch.cmd_watch)
    p.add_argument("--key", help="only this key")
    p.add_argument("--prefix", help="only keys with this prefix")
    p.add_argument("--since", type=non_negative_int, metavar="REV", help="replay the changes after this revision")
    p.add_argument("--snapshot", action="store_true", help="first print every current entry")
    p.add_argument("--no-values", action="store_true", help="events without values")
    p.add_argument("-n", "--count", type=positive_int, help="exit after this many events")

    p = command("populate", "write N sample keys (batches of up to 1000)", keys.cmd_populate)
    p.add_argument("count", metavar="N", type=positive_int)
    p.add_argument("--prefix", default="sample:", help="key prefix (default sample:)")
    p.add_argument("--batch-size", type=positive_int, default=keys.MAX_BATCH_ITEMS, help="keys per request")

    bucket_parser = command("buckets", "list, create, inspect or delete buckets", buckets.cmd_buckets_list)
    bucket_sub = bucket_parser.add_subparsers(dest="bucket_command", metavar="ACTION")
    command("list", "list buckets (the default action)", buckets.cmd_buckets_list, under=bucket_sub)
    p = command("create", "create a bucket", buckets.cmd_buckets_create, under=bucket_sub)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--description")
    p.add_argument("--history", type=positive_int, help="revisions kept per key (default 10)")
    p.add_argument("--ttl", type=positive_int, help="default seconds to live of new keys")
    p.add_argument("--max-value-size", type=positive_int, metavar="BYTES")
    p = command("info", "show a bucket", buckets.cmd_buckets_info, under=bucket_sub)
    p.add_argument("name", metavar="NAME")
    p = command("delete", "delete a bucket and all its keys", buckets.cmd_buckets_delete, under=bucket_sub)
    p.add_argument("name", metavar="NAME")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    # kvctl objects ...: more object commands register under objects_sub (command(..., under=objects_sub)).
    objects_parser = command("objects", "object buckets and objects: put, get, ls, rm, verify", objects.cmd_ls)
    objects_parser.set_defaults(bucket_name=None, prefix=None, limit=None, cursor=None, all_pages=False)
    objects_parser.set_defaults(names_only=False)
    objects_sub = objects_parser.add_subparsers(dest="objects_command", metavar="ACTION")
    p = command("put", "upload a file (- for stdin); multipart above the threshold", objects.cmd_put, under=objects_sub)
    p.add_argument("bucket_name", metavar="BUCKET")
    p.add_argument("name", metavar="NAME", help="the object's name ('/' allowed)")
    p.add_argument("path", metavar="PATH", help="the file to upload, - for stdin")
    p.add_argument("--content-type", help="default: guessed from PATH's name, else application/octet-stream")
    p.add_argument("--description")
    p.add_argument("--meta", action="append", default=[], metavar="NAME=VALUE", help="X-Object-Meta-*; repeatable")
    p.add_argument("--if-match", metavar="SHA256", help="replace only this version (its sha256 or ETag)")
    p.add_argument("--create", action="store_true", help="only if the object does not exist")
    p.add_argument(
        "--multipart-threshold",
        type=size,
        default=objects.DEFAULT_MULTIPART_THRESHOLD,
        metavar="SIZE",
        help="files larger than this go up in parts (default 64MiB)",
    )
    p.add_argument("--part-size", type=size, default=objects.DEFAULT_PART_SIZE, metavar="SIZE", help="default 16MiB")
    p.add_argument(
        "--no-resume", dest="resume", action="store_false", help="start afresh instead of resuming an unfinished upload"
    )
    p = command("get", "download an object to a file or stdout", objects.cmd_get, under=objects_sub)
    p.add_argument("bucket_name", metavar="BUCKET")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", metavar="PATH", help="write to this file (default: stdout)")
    p.add_argument("--range", metavar="FIRST-LAST", help="only these bytes: 0-1023, 1024- or -500 (the last 500)")
    p.add_argument(
        "--no-resume", dest="resume", action="store_false", help="do not continue an interrupted download to -o PATH"
    )
    p = command("ls", "list object buckets, or a bucket's objects", objects.cmd_ls, under=objects_sub)
    p.add_argument("bucket_name", metavar="BUCKET", nargs="?")
    p.add_argument("--prefix")
    p.add_argument("--limit", type=positive_int, help="objects per page (at most 1000)")
    p.add_argument("--cursor", help="continue from a previous page's next_cursor")
    p.add_argument("--all-pages", action="store_true", help="follow next_cursor to the end")
    p.add_argument("-q", "--names-only", action="store_true", help="print object names only")
    p = command("rm", "delete objects", objects.cmd_rm, under=objects_sub)
    p.add_argument("bucket_name", metavar="BUCKET")
    p.add_argument("names", metavar="NAME", nargs="+")
    p.add_argument("--if-match", metavar="SHA256", help="delete only this version")
    p = command("verify", "rehash an object's stored chunks (exit 1 if damaged)", objects.cmd_verify, under=objects_sub)
    p.add_argument("bucket_name", metavar="BUCKET")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--file", metavar="PATH", help="also compare with this local file")
    presign.add_presign_command(command, objects_sub)
    p = command("buckets", "list, create or delete object buckets", objects.cmd_buckets_list, under=objects_sub)
    object_bucket_sub = p.add_subparsers(dest="object_bucket_command", metavar="ACTION")
    command("list", "list object buckets (the default action)", objects.cmd_buckets_list, under=object_bucket_sub)
    p = command("create", "create an object bucket", objects.cmd_buckets_create, under=object_bucket_sub)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--description")
    p.add_argument("--chunk-size", type=size, metavar="SIZE", help="64KiB to 8MiB (default 1MiB)")
    p.add_argument("--max-object-size", type=size, metavar="SIZE")
    p = command("delete", "delete an object bucket", objects.cmd_buckets_delete, under=object_bucket_sub)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="delete its objects too (refused if not empty otherwise)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    command("usage", "what the tenant uses, against its limits", usage.cmd_usage)

    p = command(
        "export", "export the tenant's data to an archive file (waits, downloads, verifies)", transfer.cmd_export
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the archive (a tar file) to write")
    p.add_argument(
        "--buckets",
        action="append",
        default=[],
        metavar="NAME",
        help="KV buckets, repeatable or comma-separated (default: all)",
    )
    p.add_argument("--objects", action="store_true", help="export every object bucket and object too")
    p.add_argument("--history", action="store_true", help="export each key's kept revisions too")
    p.add_argument("--id", metavar="ID", help="download (or resume downloading) this existing export instead")
    p.add_argument("--wait-timeout", type=positive_float, metavar="SECONDS", help="give up waiting after this long")
    p = command("import", "import an archive file into the tenant (waits, prints the report)", transfer.cmd_import)
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--on-conflict",
        choices=("skip", "overwrite", "fail"),
        default="skip",
        help="an existing key or object: keep it (default), replace it, or fail before any write",
    )
    p.add_argument("--wait-timeout", type=positive_float, metavar="SECONDS", help="give up waiting after this long")
    p = command("lock", "run a command while holding a lock (kvctl lock NAME -- COMMAND...)", lock.cmd_lock)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--ttl", type=positive_int, default=10, help="seconds of the lease kept alive meanwhile (10)")
    p.add_argument("--wait", type=non_negative_float, default=3600.0, help="seconds to wait for the lock (3600)")
    # The command after `--` is split off by parse_args() below (argparse would take it for options).

    p = command("audit", "the tenant's audit trail, newest first", audit.cmd_audit)
    p.add_argument("--action", help="only this action, e.g. kv.put_key")
    p.add_argument("--key", help="only events on this key or object")
    p.add_argument("--limit", type=positive_int, help="events per page (default 50)")
    p.add_argument("--cursor", help="continue from a previous page's next_cursor (older events)")
    p.add_argument("--all-pages", action="store_true", help="follow next_cursor to the oldest event")
    p.add_argument("-f", "--follow", action="store_true", help="print new events as they are recorded (Ctrl-C stops)")
    p.add_argument("--interval", type=positive_float, default=2.0, help="seconds between polls of --follow (2)")

    keys_parser = command("api-keys", "create, list or revoke scoped API keys", api_keys.cmd_api_keys_list)
    keys_sub = keys_parser.add_subparsers(dest="api_keys_command", metavar="ACTION")
    command(
        "list", "list the API keys, without secrets (the default action)", api_keys.cmd_api_keys_list, under=keys_sub
    )
    p = command(
        "create", "create an API key and print it (shown only once)", api_keys.cmd_api_keys_create, under=keys_sub
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help=f"repeatable or comma-separated: {', '.join(api_keys.SCOPES)}",
    )
    p.add_argument(
        "--buckets",
        action="append",
        default=[],
        metavar="NAME",
        help="buckets the key may use, repeatable or comma-separated (default: every bucket)",
    )
    p.add_argument("--key-prefix", metavar="PREFIX", help="keys and object names must start with it")
    p.add_argument("--expires-in", type=positive_int, metavar="SECONDS", help="default: never expires")
    p = command(
        "revoke", "revoke an API key (refused everywhere within 1 s)", api_keys.cmd_api_keys_revoke, under=keys_sub
    )
    p.add_argument("id", metavar="ID")

    hooks_parser = command("webhooks", "register endpoints called with your changes", webhooks.cmd_webhooks_list)
    hooks_sub = hooks_parser.add_subparsers(dest="webhooks_command", metavar="ACTION")
    command("list", "list the webhooks (the default action)", webhooks.cmd_webhooks_list, under=hooks_sub)
    p = command(
        "create", "register a webhook and print its signing secret", webhooks.cmd_webhooks_create, under=hooks_sub
    )
    p.add_argument("hook_url", metavar="URL", help="the https:// URL to call")
    p.add_argument(
        "--buckets", action="append", default=[], metavar="NAME", help="repeatable or comma-separated (default: *)"
    )
    p.add_argument(
        "--events",
        action="append",
        default=[],
        metavar="EVENT",
        help=f"repeatable or comma-separated: {', '.join(webhooks.EVENTS)} (default: all)",
    )
    p.add_argument("--key-prefix", metavar="PREFIX", help="only keys and object names with this prefix")
    p.add_argument("--description")
    p = command("deliveries", "a webhook's deliveries, newest first", webhooks.cmd_webhooks_deliveries, under=hooks_sub)
    p.add_argument("id", metavar="ID")
    p.add_argument("--limit", type=positive_int, help="deliveries per page (default 50)")
    p.add_argument("--cursor", help="continue from a previous page's next_cursor (older deliveries)")
    p = command("test", "send a test event to a webhook", webhooks.cmd_webhooks_test, under=hooks_sub)
    p.add_argument("id", metavar="ID")
    p = command("delete", "delete a webhook", webhooks.cmd_webhooks_delete, under=hooks_sub)
    p.add_argument("id", metavar="ID")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments; for `kvctl lock NAME [options] -- COMMAND...`, everything after the first `--`
    is the command to run (``cmd``), never kvctl's options."""
    parser = build_parser()
    if "--" in argv and "lock" in argv[: argv.index("--")]:
        split = argv.index("--")
        args, rest = parser.parse_known_args(argv[:split])
        if args.command == "lock":
            if rest:
                parser.error(f"unrecognized arguments: {' '.join(rest)}")
            args.cmd = argv[split + 1 :]
            return args
    args = parser.parse_args(argv)
    args.cmd = []
    return args


def _silence_stdout() -> None:
    """After a closed pipe (kvctl list | head) keep Python from complaining while it flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> int:
    """Run one kvctl command; returns the exit code (``transport`` lets tests answer without a server)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Output(json_mode=args.json)
    ctx: Context | None = None
    try:
        store = ConfigStore()
        ctx = Context(args, out, store, resolve_url(args.url, store), transport)
        status: int = args.handler(ctx)
        return status
    except CliError as exc:
        out.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        out.note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # the last resort: one line, never a traceback
        if os.environ.get("KVCTL_DEBUG"):
            raise
        out.error(CliError(f"unexpected {exc.__class__.__name__}: {exc}"))
        return EXIT_ERROR
    finally:
        if ctx is not None:
            ctx.close()


if __name__ == "__main__":
    sys.exit(main())
