"""app/grpc/gen is what grpcio-tools makes of proto/ (scripts/gen_protos.py): regenerating gives the
committed files byte for byte, so a .proto never changes without its code."""

from __future__ import annotations

from pathlib import Path

from scripts.gen_protos import GEN_PACKAGE, ROOT, generate


def test_regenerating_from_the_protos_gives_the_committed_code(tmp_path: Path) -> None:
    generated = generate(tmp_path)
    names = sorted(path.name for path in generated)
    committed = sorted(path.name for path in (ROOT / GEN_PACKAGE).glob("*_pb2*.py"))
    assert (
        names
        == committed
        == [
            "kvstore_pb2.py",
            "kvstore_pb2_grpc.py",
            "kvstore_v1_pb2.py",
            "kvstore_v1_pb2_grpc.py",
        ]
    )
    for path in generated:
        assert path.read_bytes() == (ROOT / GEN_PACKAGE / path.name).read_bytes(), (
            f"{path.name} is stale: run python -m scripts.gen_protos"
        )


def test_the_seed_service_keeps_its_documented_names_and_field_numbers() -> None:
    from app.grpc.gen import kvstore_pb2

    service = kvstore_pb2.DESCRIPTOR.services_by_name["KvStore"]
    assert service.full_name == "kvstore.KvStore"
    assert [m.name for m in service.methods] == ["Put", "Get", "Delete", "GetAll", "Watch"]
    assert service.methods_by_name["Watch"].server_streaming
    fields = {
        name: [(f.name, f.number, f.type) for f in kvstore_pb2.DESCRIPTOR.message_types_by_name[name].fields]
        for name in ("PutRequest", "PutResponse", "GetRequest", "GetResponse", "WatchRequest", "WatchResponse")
    }
    string, boolean = 9, 8
    assert fields == {
        "PutRequest": [("key", 1, string), ("value", 2, string)],
        "PutResponse": [("success", 1, boolean)],
        "GetRequest": [("key", 1, string)],
        "GetResponse": [("key", 1, string), ("value", 2, string)],
        "WatchRequest": [("key", 1, string)],
        "WatchResponse": [("message", 1, string)],
    }
