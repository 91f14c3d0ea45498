"""A client of the Go gRPC KV store, generated from that store's own proto definitions (the README
of ../shared/seeds/001_f8f272a2b279bf42.txt), run in a process of its own: the server's generated
code registers the same message names in this process's protobuf pool.

``python -m tests.support.go_grpc_client <dir with kvstore.proto> <host:port> <token>`` generates
the stubs with grpcio-tools into that directory, replays the calls the Go store's README shows
(put/get/delete/all/populate/watch), and prints a JSON transcript of what came back."""

from __future__ import annotations

import importlib
import json
import queue
import sys
import threading
from typing import Any

SEED_PROTO = """syntax = "proto3";

package kvstore;

// As documented by the Go store's README ("API Reference").
service KvStore {
    rpc Put(PutRequest) returns (PutResponse);
    rpc Get(GetRequest) returns (GetResponse);
    rpc Delete(DeleteRequest) returns (DeleteResponse);
    rpc GetAll(GetAllRequest) returns (GetAllResponse);
    rpc Watch(WatchRequest) returns (stream WatchResponse);
}

message PutRequest {
    string key = 1;
    string value = 2;
}

message PutResponse {
    bool success = 1;
}

message GetRequest {
    string key = 1;
}

message GetResponse {
    string key = 1;
    string value = 2;
}

message WatchRequest {
    string key = 1;
}

message WatchResponse {
    string message = 1;
}

// Not in its README: the shapes its Go implementation most likely had (GetAll as repeated pairs,
// which is the wire form of the map<string, string> the server declares).
message DeleteRequest {
    string key = 1;
}

message DeleteResponse {
    bool success = 1;
}

message GetAllRequest {
}

message KeyValue {
    string key = 1;
    string value = 2;
}

message GetAllResponse {
    repeated KeyValue pairs = 1;
}
"""


def generate(directory: str) -> tuple[Any, Any]:
    from grpc_tools import protoc

    with open(f"{directory}/kvstore.proto", "w") as file:
        file.write(SEED_PROTO)
    args = ["protoc", f"-I{directory}", f"--python_out={directory}", f"--grpc_python_out={directory}", "kvstore.proto"]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, directory)
    return importlib.import_module("kvstore_pb2"), importlib.import_module("kvstore_pb2_grpc")


def main(directory: str, target: str, token: str) -> None:
    import grpc

    pb, pb_grpc = generate(directory)
    md = (("authorization", f"Bearer {token}"),)
    transcript: dict[str, Any] = {}
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.KvStoreStub(channel)
        # Quick Start: put test hello, get test.
        transcript["put test"] = stub.Put(pb.PutRequest(key="test", value="hello"), metadata=md).success
        got = stub.Get(pb.GetRequest(key="test"), metadata=md)
        transcript["get test"] = [got.key, got.value]
        # Desenvolvimento: put/get/delete nome, all.
        stub.Put(pb.PutRequest(key="nome", value="Daniel"), metadata=md)
        transcript["get nome"] = stub.Get(pb.GetRequest(key="nome"), metadata=md).value
        transcript["delete nome"] = stub.Delete(pb.DeleteRequest(key="nome"), metadata=md).success
        try:
            stub.Get(pb.GetRequest(key="nome"), metadata=md)
            transcript["get deleted"] = "found"
        except grpc.RpcError as error:
            transcript["get deleted"] = error.code().name
        transcript["delete again"] = stub.Delete(pb.DeleteRequest(key="nome"), metadata=md).success
        # Exemplos práticos: a JSON document as the value.
        user = '{"name":"João","email":"joao@email.com"}'
        stub.Put(pb.PutRequest(key="user:1", value=user), metadata=md)
        transcript["get user:1"] = stub.Get(pb.GetRequest(key="user:1"), metadata=md).value
        # populate, then all.
        for index in range(5):
            stub.Put(pb.PutRequest(key=f"populate:{index}", value=f"value {index}"), metadata=md)
        pairs = stub.GetAll(pb.GetAllRequest(), metadata=md).pairs
        transcript["all"] = {pair.key: pair.value for pair in pairs}
        # watch user:1 while it changes.
        transcript["watch"] = watch(stub, pb, md)
        try:
            stub.Get(pb.GetRequest(key="test"))
            transcript["no credential"] = "served"
        except grpc.RpcError as error:
            transcript["no credential"] = error.code().name
    print(json.dumps(transcript))


def watch(stub: Any, pb: Any, md: Any) -> dict[str, Any]:
    """Open Watch(user:1), then change the key until a message arrives (the stream starts
    asynchronously: a change made before it is subscribed is not sent)."""
    messages: queue.Queue[str] = queue.Queue()
    stream = stub.Watch(pb.WatchRequest(key="user:1"), metadata=md)

    def follow() -> None:
        try:
            for response in stream:
                messages.put(response.message)
        except Exception:  # the stream is cancelled at the end
            return

    threading.Thread(target=follow, daemon=True).start()
    for attempt in range(40):
        stub.Put(pb.PutRequest(key="user:1", value=f"v{attempt}"), metadata=md)
        try:
            message = json.loads(messages.get(timeout=0.5))
        except queue.Empty:
            continue
        stream.cancel()
        return {"attempt": attempt, "message": message}
    stream.cancel()
    return {"attempt": None}


if __name__ == "__main__":
    main(*sys.argv[1:4])
