"""What connect-core's modules import is declared: the base dependencies, or the ``testing`` extra for
``danube_connect_core.testing`` (the test helpers run an embedded broker and use pytest)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import danube_connect_core

PACKAGE = Path(danube_connect_core.__file__).parent


def _imported_distributions(files: list[Path]) -> set[str]:
    """Distributions that provide the third-party top-level modules imported anywhere in ``files``."""
    providers = md.packages_distributions()
    found: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "danube_connect_core":
                    continue
                # Editable workspace members are missing from packages_distributions(); they are named
                # after their module (danube_embedded_broker -> danube-embedded-broker).
                dists = providers.get(top) or [md.distribution(_normalise(top)).metadata["Name"]]
                found.update(_normalise(d) for d in _providers_of(name, dists))
    return found


def _providers_of(module: str, dists: list[str]) -> list[str]:
    """Of the distributions sharing a top-level namespace (``google`` comes from protobuf and from
    googleapis-common-protos), those whose files hold ``module`` itself."""
    if len(dists) <= 1:
        return dists
    prefix = module.replace(".", "/") + "/"
    holders = [
        d
        for d in dists
        if any(str(f).startswith(prefix) or str(f) == prefix[:-1] + ".py" for f in md.files(d) or [])
    ]
    return holders or dists


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extra: str | None) -> set[str]:
    declared = set()
    for requirement in md.requires("danube-connect-core") or []:
        name, _, marker = requirement.partition(";")
        in_extra = f"extra == '{extra}'" in marker.replace('"', "'") if extra else not marker.strip()
        if in_extra:
            declared.add(_normalise(re.split(r"[\s<>=!~\[(]", name.strip(), maxsplit=1)[0]))
    return declared


#: SDK modules behind an extra of their own (imported only by the connectors that declare it).
EXTRA_MODULES = {"columns.py": "columns"}


def test_the_sdk_imports_only_its_declared_dependencies() -> None:
    sdk = [
        p
        for p in PACKAGE.rglob("*.py")
        if "testing" not in p.relative_to(PACKAGE).parts
        and p.relative_to(PACKAGE).as_posix() not in EXTRA_MODULES
    ]
    # grpcio-tools only generated the stubs (proto/); the stubs themselves import protobuf and grpc.
    assert _imported_distributions(sdk) <= _declared(None)


def test_the_testing_helpers_import_only_the_base_and_the_testing_extra() -> None:
    testing = list((PACKAGE / "testing").rglob("*.py"))
    extra = _declared("testing")
    assert {"danube-embedded-broker", "pytest"} <= extra
    assert _imported_distributions(testing) <= _declared(None) | extra


def test_modules_behind_an_extra_import_only_the_base_and_that_extra() -> None:
    for module, extra in EXTRA_MODULES.items():
        assert _imported_distributions([PACKAGE / module]) <= _declared(None) | _declared(extra), module
