"""The wire contract: committed stubs equal a fresh `make proto`, and every message, field, enum and
RPC the official `danube-client` knows has the same name, number and type in ours."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent

# Printed as JSON by a subprocess, for our stubs or the official client's (the two register the same
# proto file names and cannot share a process, see docs/wire-contract.md §1).
_DESCRIBE = """
import json, sys
from google.protobuf import descriptor_pb2
if sys.argv[1] == "ours":
    from danube_connect_core.proto import DanubeApi_pb2 as api, SchemaRegistry_pb2 as reg
else:
    from danube.proto import DanubeApi_pb2 as api, SchemaRegistry_pb2 as reg
out = {}
def walk(messages, prefix):
    for m in messages:
        out["message " + prefix + m.name] = sorted(
            [f.name, f.number, f.type, f.label, f.type_name, f.proto3_optional] for f in m.field)
        walk(m.nested_type, prefix + m.name + ".")
        for e in m.enum_type:
            out["enum " + prefix + m.name + "." + e.name] = [[v.name, v.number] for v in e.value]
for module in (api, reg):
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    out["file " + fdp.name] = fdp.package
    walk(fdp.message_type, fdp.package + ".")
    for e in fdp.enum_type:
        out["enum " + fdp.package + "." + e.name] = [[v.name, v.number] for v in e.value]
    for s in fdp.service:
        for m in s.method:
            out["rpc " + fdp.package + "." + s.name + "." + m.name] = [
                m.input_type, m.output_type, m.client_streaming, m.server_streaming]
print(json.dumps(out))
"""


def _describe(which: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _DESCRIBE, which], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    gen = _load_generator()
    fresh = {p.name: p.read_text() for p in gen.generate(tmp_path)}
    committed = {p.name: p.read_text() for p in gen.STUB_DIR.iterdir() if p.is_file()}
    assert sorted(committed) == sorted(fresh), "stub files differ from a fresh generation: run `make proto`"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert not stale, f"stale generated stubs {stale}: run `make proto` and commit the result"


def test_every_official_client_definition_is_identical_in_ours() -> None:
    ours, official = _describe("ours"), _describe("official")
    assert official, "the official client's descriptors could not be read"
    differing = {key: (ours.get(key), value) for key, value in official.items() if ours.get(key) != value}
    assert not differing, f"our proto differs from the official client's: {differing}"
    # Ours is a superset: the 0.5.0 wheel predates these two definitions of broker v0.15.
    extra = sorted(key for key in ours if key not in official)
    assert "rpc danube.StorageService.ListSegmentDescriptors" in extra
    assert "rpc danube_schema.SchemaRegistry.ListSubjects" in extra
