"""The public author API: ``danube_connect_core`` exports the names a connector needs, and only those."""

from __future__ import annotations

import importlib
import subprocess
import sys

import danube_connect_core
import pytest


def test_every_exported_name_resolves_to_its_defining_module() -> None:
    assert sorted(danube_connect_core.__all__) == sorted(danube_connect_core._EXPORTS)
    for name in danube_connect_core.__all__:
        value = getattr(danube_connect_core, name)
        module = importlib.import_module(f"danube_connect_core.{danube_connect_core._EXPORTS[name]}")
        assert value is getattr(module, name), name
    assert set(danube_connect_core.__all__) <= set(dir(danube_connect_core))


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        danube_connect_core.Nope  # noqa: B018
    from danube_connect_core import exact_json  # a submodule, not an export

    assert exact_json.__name__ == "danube_connect_core.exact_json"


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from danube_connect_core import *", namespace)
    assert {"SinkConnector", "SinkRecord", "InvalidData", "connector_main"} <= set(namespace)


def test_importing_the_client_does_not_load_the_runtime() -> None:
    # The exports are loaded on first use: a client-only program must not pay for the runtime's HTTP
    # server and metrics. Run in a fresh interpreter: this test process has loaded everything already.
    code = (
        "import sys, danube_connect_core.client; "
        "print(sorted(m for m in ('aiohttp', 'prometheus_client', 'danube_connect_core.lifecycle') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_client_imports_only_the_leaf_modules_of_the_core() -> None:
    # The client sits below the runtimes: it may use the stubs and the dependency-free leaves, nothing else.
    import ast
    from pathlib import Path

    allowed = {"proto", "errors", "resilience", "subscription"}
    client_dir = Path(danube_connect_core.__file__).parent / "client"
    for path in client_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.level == 2:  # from ..x import y
                used = node.module.split(".")[0]
            elif node.level == 0 and node.module.startswith("danube_connect_core."):
                used = node.module.split(".")[1]
                if used == "client":
                    continue
            else:
                continue
            assert used in allowed, f"{path.name} imports danube_connect_core.{used}"
