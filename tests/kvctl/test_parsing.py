"""kvctl's argument parsing and output formatting, without a server."""

from __future__ import annotations

import shlex

import pytest

from kvctl.client import KVPaths
from kvctl.config import ConfigStore, Session, config_path, resolve_url
from kvctl.keys import parse_json_or_text, parse_put_tags, parse_tag_filters
from kvctl.main import build_parser, parse_args
from kvctl.output import format_tags, format_ttl, format_value
from kvctl.watch import format_event
from tests.support.paths import REPO


def test_global_options_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--bucket", "cfg", "--url", "http://a", "get", "k"])
    after = parser.parse_args(["get", "k", "--json", "--bucket", "cfg", "--url", "http://a"])
    for args in (before, after):
        assert (args.json, args.bucket, args.url, args.key) == (True, "cfg", "http://a", "k")


def test_global_option_defaults_when_absent() -> None:
    args = build_parser().parse_args(["list"])
    assert (args.json, args.bucket, args.url, args.timeout) == (False, "default", None, 30.0)


def test_option_after_command_overrides_the_one_before() -> None:
    args = build_parser().parse_args(["--bucket", "a", "list", "--bucket", "b"])
    assert args.bucket == "b"


def test_all_is_an_alias_of_list() -> None:
    args = build_parser().parse_args(["all", "--prefix", "user:", "--tag", "a:1", "--tag", "b:2", "--all-pages"])
    assert args.handler.__name__ == "cmd_list"
    assert (args.prefix, args.tag, args.all_pages) == ("user:", ["a:1", "b:2"], True)


def test_put_collects_repeated_tags_and_options() -> None:
    args = build_parser().parse_args(["put", "k", "v", "--ttl", "0", "--tag", "a=1", "--tag", "b=2", "--if-match", "3"])
    assert (args.key, args.value, args.ttl, args.tag, args.if_match) == ("k", "v", 0, ["a=1", "b=2"], "3")


def test_buckets_without_action_lists() -> None:
    assert build_parser().parse_args(["buckets"]).handler.__name__ == "cmd_buckets_list"
    create = build_parser().parse_args(["buckets", "create", "cfg", "--history", "5", "--json"])
    assert (create.handler.__name__, create.name, create.history, create.json) == ("cmd_buckets_create", "cfg", 5, True)


@pytest.mark.parametrize(
    "argv",
    [["put", "k", "v", "--ttl", "-1"], ["populate", "0"], ["list", "--limit", "x"], ["get", "k", "--revision", "0"]],
)
def test_bad_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "usage: kvctl" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", 42), ("true", True), ('{"a": [1]}', {"a": [1]}), ('"7"', "7"), ("hello", "hello"), ("NaN", "NaN")],
)
def test_values_are_json_when_they_parse_else_text(text: str, expected: object) -> None:
    assert parse_json_or_text(text, force_string=False) == expected


def test_string_flag_keeps_json_looking_text() -> None:
    assert parse_json_or_text("42", force_string=True) == "42"


def test_tag_parsing() -> None:
    assert parse_put_tags(["env=prod", "url=a=b"]) == {"env": "prod", "url": "a=b"}
    assert parse_tag_filters(["env:prod", "team=core"]) == ["env:prod", "team:core"]


def test_routes_of_the_default_bucket_and_of_a_named_one() -> None:
    flat, named = KVPaths("default"), KVPaths("cfg")
    assert flat.key("a:b") == "/api/v1/kv/a%3Ab"
    assert named.key("a") == "/api/v1/kv/buckets/cfg/keys/a"
    assert (flat.keys(), named.keys()) == ("/api/v1/kv", "/api/v1/kv/buckets/cfg/keys")
    assert (flat.batch(), named.batch()) == ("/api/v1/kv/batch", "/api/v1/kv/buckets/cfg/keys/batch")
    assert named.history("a") == "/api/v1/kv/buckets/cfg/keys/a/history"
    assert flat.watch() == "/api/v1/kv/buckets/default/watch"
    assert KVPaths("default").key("../x/y") == "/api/v1/kv/..%2Fx%2Fy"  # a key never changes the route


def test_value_formatting() -> None:
    assert format_value("text") == "text"
    assert format_value({"a": 1}) == '{"a":1}'
    assert format_value("AAEC", "base64") == "<binary, 3 bytes>"
    assert format_value("x" * 100, width=10) == "x" * 9 + "…"
    assert (format_ttl(None), format_ttl(0), format_ttl(30)) == ("-", "-", "30s")
    assert (format_tags({"a": "1", "b": "2"}), format_tags({})) == ("a=1,b=2", "-")


def test_event_formatting() -> None:
    line = format_event("put", "7", {"key": "k", "revision": 7, "version": 2, "value": {"a": 1}, "tags": {"t": "1"}})
    assert line == '7 put k = {"a":1}  (version 2, tags t=1)'
    assert format_event("delete", "8", {"key": "k", "revision": 8}) == "8 delete k"


def test_config_path_honours_env_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("KVCTL_CONFIG", str(tmp_path / "c.json"))
    assert config_path() == tmp_path / "c.json"
    monkeypatch.delenv("KVCTL_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "kvctl" / "config.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_path() == tmp_path / "home" / ".config" / "kvctl" / "config.json"


def test_url_order_is_flag_env_last_login_default(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("KVCTL_URL", raising=False)
    store = ConfigStore(tmp_path / "c.json")
    assert resolve_url(None, store) == "http://127.0.0.1:8000"
    store.set_session("http://last:1/", Session("a", "x", "y", 0))
    assert resolve_url(None, store) == "http://last:1"
    monkeypatch.setenv("KVCTL_URL", "http://env:2")
    assert resolve_url(None, store) == "http://env:2"
    assert resolve_url("flag:3", store) == "http://flag:3"


def readme_kvctl_commands() -> list[str]:
    """Every `kvctl ...` line of the code blocks of README's kvctl section (comments, pipes and
    redirections cut off)."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## kvctl\n") :]
    section = section[: section.index("\n## ", 1)]
    commands = []
    for line in section.splitlines():
        line = line.split("#", 1)[0].split("<", 1)[0].strip()
        if "|" in line:
            line = line.split("|", 1)[1].strip()
        if line.startswith("kvctl "):
            commands.append(line)
    return commands


def test_every_kvctl_command_in_the_readme_parses() -> None:
    commands = readme_kvctl_commands()
    assert any(c.startswith("kvctl objects put") for c in commands) and any(
        c.startswith("kvctl audit") for c in commands
    )
    for command in commands:
        args = parse_args(shlex.split(command)[1:])  # exits (fails the test) on a bad option
        assert callable(args.handler), command


def test_kvctl_lock_takes_everything_after_the_double_dash_as_the_command() -> None:
    args = parse_args(["lock", "deploy", "--ttl", "5", "--", "./deploy.sh", "--ttl", "9", "-x"])
    assert (args.name, args.ttl, args.cmd) == ("deploy", 5, ["./deploy.sh", "--ttl", "9", "-x"])
    assert parse_args(["put", "k", "--", "-5"]).value == "-5"  # other commands keep argparse's `--`
