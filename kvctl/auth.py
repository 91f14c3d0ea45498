"""Account commands: register, login, logout (--all), passwd, whoami, token."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from kvctl.client import API
from kvctl.context import Context
from kvctl.errors import EXIT_OK, ApiError, CliError, ConnectionFailed

PASSWORD_ENV = "KVCTL_PASSWORD"


def prompt(label: str, flag: str) -> str:
    if not sys.stdin.isatty():
        raise CliError(f"{flag} is required (no terminal to ask on)")
    answer = input(label).strip()
    if not answer:
        raise CliError(f"{flag} is required")
    return answer


def read_password(args: argparse.Namespace, *, confirm: bool) -> str:
    """--password-stdin, --password, $KVCTL_PASSWORD, else a prompt on the terminal."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if confirm and getpass.getpass("password again: ") != password:
            raise CliError("the passwords do not match")
    else:
        raise CliError(f"no password: use --password-stdin, ${PASSWORD_ENV} or run on a terminal")
    if not password:
        raise CliError("the password is empty")
    return password


def _report_login(ctx: Context, verb: str, tokens: dict[str, Any], username: str) -> None:
    session = ctx.client.save_login(tokens, username)
    if ctx.out.json_mode:
        ctx.out.data(
            {
                "url": ctx.url,
                "username": session.username,
                "tenant_id": session.tenant_id,
                "expires_in": tokens.get("expires_in"),
                "config": str(ctx.store.path),
            }
        )
    else:
        ctx.out.line(f"{verb} {session.username} on {ctx.url} (session saved in {ctx.store.path})")


def cmd_register(ctx: Context) -> int:
    args = ctx.args
    username = (args.username or prompt("username: ", "--username")).lower()
    email = args.email or prompt("email: ", "--email")
    password = read_password(args, confirm=True)
    tokens = ctx.client.call(
        "POST", f"{API}/auth/register", auth=False, json={"username": username, "email": email, "password": password}
    )
    _report_login(ctx, "registered and logged in as", tokens, username)
    return EXIT_OK


def cmd_login(ctx: Context) -> int:
    args = ctx.args
    username = (args.username or prompt("username: ", "--username")).lower()
    password = read_password(args, confirm=False)
    tokens = ctx.client.call("POST", f"{API}/auth/login", auth=False, json={"username": username, "password": password})
    _report_login(ctx, "logged in as", tokens, username)
    return EXIT_OK


def cmd_logout(ctx: Context) -> int:
    session = ctx.store.session(ctx.url)
    if session is None:
        raise CliError(f"not logged in to {ctx.url}")
    revoked = True
    try:
        if ctx.args.all:  # every session of the account, on every machine
            ctx.client.request("POST", f"{API}/auth/logout-all")
        else:
            ctx.client.request("POST", f"{API}/auth/logout", auth=False, json={"refresh_token": session.refresh_token})
    except (ApiError, ConnectionFailed) as exc:
        revoked = False  # still forget the tokens locally; the server lets them expire
        ctx.out.note(f"warning: the server did not revoke the session: {exc.message}")
    with ctx.store.locked():
        ctx.store.remove_session(ctx.url)
    if ctx.out.json_mode:
        ctx.out.data({"url": ctx.url, "username": session.username, "logged_out": True, "revoked": revoked})
    else:
        ctx.out.line(f"logged out {session.username} from {ctx.url}")
    return EXIT_OK


def read_new_password(args: argparse.Namespace) -> str:
    """--new-password, the second line of stdin with --password-stdin, else a prompt (twice)."""
    if args.new_password is not None:
        password = str(args.new_password)
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("new password: ")
        if getpass.getpass("new password again: ") != password:
            raise CliError("the passwords do not match")
    else:
        raise CliError("no new password: use --new-password, a second line with --password-stdin, or a terminal")
    if not password:
        raise CliError("the new password is empty")
    return password


def cmd_passwd(ctx: Context) -> int:
    """Change the password; the server ends every other session, this one goes on."""
    session = ctx.client.session()
    current = read_password(ctx.args, confirm=False)
    new = read_new_password(ctx.args)
    ctx.client.request("POST", f"{API}/auth/password", json={"current_password": current, "new_password": new})
    if ctx.out.json_mode:
        ctx.out.data({"url": ctx.url, "username": session.username, "password_changed": True})
    else:
        ctx.out.line(f"password of {session.username} on {ctx.url} changed; every other session has ended")
    return EXIT_OK


def cmd_whoami(ctx: Context) -> int:
    if ctx.store.session(ctx.url) is None:
        # Without a session there is nothing to send; still, "not logged in" would mislead when the
        # server is not even there (a wrong --url, the API down): ask it first, unauthenticated.
        ctx.client.transmit(ctx.client.http.build_request("GET", "/health/live")).close()  # exit 2 if unreachable
    me = ctx.client.call("GET", f"{API}/auth/me")
    if ctx.out.json_mode:
        ctx.out.data({**me, "url": ctx.url})
    else:
        ctx.out.line(f"{me.get('username')} <{me.get('email')}> tenant {me.get('tenant_id')} on {ctx.url}")
    return EXIT_OK


def cmd_token(ctx: Context) -> int:
    token = ctx.client.access_token()
    if ctx.out.json_mode:
        ctx.out.data({"access_token": token, "token_type": "bearer", "expires_at": ctx.client.session().expires_at})
    else:
        ctx.out.line(token)
    return EXIT_OK
