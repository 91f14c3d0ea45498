"""Generate app/grpc/gen from proto/*.proto with grpcio-tools (`python -m scripts.gen_protos`).

The generated modules are committed; tests/grpc/test_generated_code.py regenerates them into a
temporary directory and fails when they differ (a .proto changed without this being run).
The proto files are mapped to app/grpc/gen/<name>.proto, so the generated modules import each other
as ``app.grpc.gen.<name>_pb2``; the protobuf packages (``kvstore``, ``kvstore.v1``) are unaffected.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GEN_PACKAGE = "app/grpc/gen"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Write the generated modules under ``out_root``/app/grpc/gen; returns their paths."""
    from grpc_tools import protoc  # a dev dependency: only needed to regenerate

    target = out_root / GEN_PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    for proto in proto_files():
        args = [
            "grpc_tools.protoc",
            f"--proto_path={GEN_PACKAGE}={PROTO_DIR}",
            f"--python_out={out_root}",
            f"--grpc_python_out={out_root}",
            f"{GEN_PACKAGE}/{proto.name}",
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto.name}")
    return sorted(path for path in target.glob("*_pb2*.py"))


def main() -> int:
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
