"""The machine description recorded with benchmark results: CPU, cores, load, Python, versions, commit.

Absolute numbers on a shared 2-core machine move by 2-3x between runs; the load average at start and
end says how busy the machine was while measuring, so a reader can judge a result.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Distributions whose versions shape the numbers (transport, HTTP, targets, serialisation).
PACKAGES = (
    "danube-connect-core",
    "danube-embedded-broker",
    "grpcio",
    "protobuf",
    "aiohttp",
    "uvloop",
    "orjson",
    "jsonschema-rs",
    "surrealdb",
    "deltalake",
    "pyarrow",
    "clickhouse-connect",
    "chdb",
    "qdrant-client",
    "asyncpg",
    "paho-mqtt",
    "matplotlib",
)


def cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str | None]:
    """Installed version per distribution in :data:`PACKAGES` (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


#: What `make bench` writes (pathspecs excluded from the dirtiness check).
_OUTPUTS = (
    ":(exclude)bench/results.json",
    ":(exclude)bench/results",
    ":(exclude)bench/README.md",
    ":(exclude)bench/e2e.png",
)


def git_commit() -> dict[str, Any]:
    """HEAD's hash and whether the work tree had uncommitted changes (None when git is unavailable).

    The benchmarks' own outputs do not count: a run rewrites them before this is asked."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_OUTPUTS],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status.strip())}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe(load_at_start: list[float] | None = None) -> dict[str, Any]:
    """The full description; ``load_at_start`` is the load average taken when the run began."""
    memory_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1) if memory_kb else None,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
        "packages": package_versions(),
        "git": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system, every thread) the process ``pid`` has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
