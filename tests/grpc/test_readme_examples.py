"""README "gRPC": the Python example runs as written against the server, and every grpcurl call
names a real method whose JSON body is a valid request message (grpcurl itself is not installed
here: protobuf's JSON parser reads the bodies as grpcurl would)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shlex

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from app.grpc.gen import kvstore_pb2, kvstore_v1_pb2
from tests.support.paths import REPO

pytestmark = pytest.mark.contract


def section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## gRPC\n")
    return text[start : text.index("\n## ", start + 1)]


def block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", section(), flags=re.S)
    assert match
    return match.group(1)


async def test_the_python_example_runs_as_written(grpc_server, alice) -> None:
    code = block("python").replace("localhost:50051", f"127.0.0.1:{grpc_server.port}")
    printed = io.StringIO()
    scope = {"token": alice.token}

    def run() -> None:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), scope)

    await asyncio.to_thread(run)  # a sync client: the server runs on this loop
    assert "code" not in scope  # the compare-and-swap succeeded
    assert printed.getvalue().strip() == 'PUT 2 user:42 b\'{"name":"Grace"}\''


def test_every_grpcurl_call_is_a_real_method_with_a_valid_body() -> None:
    services = {
        "kvstore.v1.KV": kvstore_v1_pb2.DESCRIPTOR.services_by_name["KV"],
        "kvstore.KvStore": kvstore_pb2.DESCRIPTOR.services_by_name["KvStore"],
    }
    checked = 0
    for line in block("sh").replace("\\\n", " ").splitlines():
        if not line.startswith("grpcurl") or " -d " not in line:
            continue
        words = shlex.split(line.split("  #")[0])
        body, method = words[words.index("-d") + 1], words[-1]
        service_name, _, method_name = method.rpartition("/")
        if service_name not in services:
            continue
        descriptor = services[service_name].methods_by_name[method_name]
        module = kvstore_v1_pb2 if service_name == "kvstore.v1.KV" else kvstore_pb2
        request_class: type[Message] = getattr(module, descriptor.input_type.name)
        json_format.Parse(body, request_class())  # raises on an unknown field or a bad value
        checked += 1
    assert checked == 10
