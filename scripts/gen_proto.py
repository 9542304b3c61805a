"""Generate the Python gRPC stubs for proto/*.proto into danube_connect_core.proto.

Run through `make proto`. The test suite runs `generate()` into a temporary directory and compares
the result with the committed files, so the stubs can never drift from the .proto contract.

protoc writes sibling imports as top-level modules (`import DanubeApi_pb2`); we rewrite them to
package-relative imports so the stubs live inside danube_connect_core without touching sys.path.
The proto files keep their registered names (DanubeApi.proto, SchemaRegistry.proto), exactly as the
official client registers them; see docs/wire-contract.md §1 for why the two must not share a process.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
STUB_DIR = ROOT / "packages" / "connect-core" / "src" / "danube_connect_core" / "proto"
PROTO_FILES = ("DanubeApi.proto", "SchemaRegistry.proto")
_SIBLING_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (grpcio-tools) for every proto file into `out_dir`; return the files written."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(PROTO_DIR / name) for name in PROTO_FILES),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed: {' '.join(args)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for produced in sorted(Path(tmp).iterdir()):
            text = _SIBLING_IMPORT.sub(r"from . import \1 as \2", produced.read_text())
            target = out_dir / produced.name
            target.write_text(text)
            written.append(target)
    init = out_dir / "__init__.py"
    init.write_text('"""Generated gRPC stubs for the Danube wire contract (`make proto`). Do not edit."""\n')
    written.append(init)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else STUB_DIR
    for path in generate(target):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
