"""Real storage faults for tests: a small tmpfs that fills up (ENOSPC) or turns read-only (EROFS).

The kernel produces the faults, not a mock: a process writing into the mount gets exactly the errors it would
get from a full or read-only disk in production.

- ``mounted_tmpfs(path, size_bytes)``: mounts a sized tmpfs at ``path`` (created if missing) and unmounts it
  when the block ends, even when the test failed and a process still holds files in it (lazy unmount as a
  last resort), so a failing test never leaves a mount behind.
- ``Tmpfs.fill()``: writes a ballast file until the kernel answers ENOSPC; ``Tmpfs.free()`` deletes it.
  tmpfs has no reserved blocks, so a full tmpfs refuses root too.
- ``Tmpfs.remount(read_only=...)``: the kernel refuses a read-only remount while any file in the mount is open
  for writing (EBUSY); that refusal is reported as ``MountBusy`` so a test can tell it apart from other
  failures. A data dir therefore only turns read-only under a running process that holds no writable file
  in it.

Mounting needs root and the mount capability (a privileged container in CI). ``require_mount_capability()``
checks both by mounting a probe tmpfs: without them it skips the test, except under ``CI=true`` where it fails
with a message that says what is missing.
"""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Size of one ballast write; small enough that the last write before ENOSPC leaves almost nothing free.
_BALLAST_CHUNK = 64 * 1024


class MountError(RuntimeError):
    """A mount, remount or unmount failed; the message carries the command and its stderr."""


class MountBusy(MountError):
    """A read-only remount was refused because a file in the mount is open for writing."""


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def _mount_problem() -> str | None:
    """Why tmpfs mounts are impossible here, or ``None`` when a probe mount succeeded."""
    if os.geteuid() != 0:
        return f"mounting a tmpfs needs root (running as uid {os.geteuid()})"
    probe = Path(tempfile.mkdtemp(prefix="tmpfs-probe-"))
    try:
        done = _run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)])
        if done.returncode != 0:
            reason = done.stderr.strip()
            return f"mount -t tmpfs failed ({reason}): the container needs --privileged or CAP_SYS_ADMIN"
        _run(["umount", str(probe)])
        return None
    except FileNotFoundError:
        return "the mount command is missing (Debian package 'mount')"
    finally:
        probe.rmdir()


def require_mount_capability() -> None:
    """Skip the calling test when tmpfs mounts are impossible; fail instead under ``CI=true``."""
    problem = _mount_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"storage fault tests need tmpfs mounts: {problem}", pytrace=False)
    pytest.skip(f"storage fault tests need tmpfs mounts: {problem}")


class Tmpfs:
    """A mounted tmpfs of a fixed size; see the module docstring for what each fault does."""

    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.ballast = path / ".ballast"
        self.read_only = False

    def free_bytes(self) -> int:
        """Bytes still available to writers."""
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self) -> int:
        """Append to the ballast file until the kernel answers ENOSPC; returns the ballast size in bytes.

        Raises ``MountError`` when the mount is read-only (filling it would prove nothing).
        """
        if self.read_only:
            raise MountError(f"{self.path} is mounted read-only; remount it read-write before filling it")
        chunk = b"\0" * _BALLAST_CHUNK
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    written = os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                if written < len(chunk):
                    # A short write means the last pages are gone; the next one answers ENOSPC.
                    continue
        finally:
            os.close(fd)
        return self.ballast.stat().st_size

    def free(self) -> None:
        """Delete the ballast, giving its space back at once (tmpfs frees pages on unlink)."""
        self.ballast.unlink(missing_ok=True)

    def remount(self, *, read_only: bool) -> None:
        """Remount read-only or read-write in place; open files stay open.

        Raises ``MountBusy`` when a read-only remount is refused because a file is open for writing, and
        ``MountError`` for any other refusal.
        """
        mode = "ro" if read_only else "rw"
        done = _run(["mount", "-o", f"remount,{mode}", str(self.path)])
        if done.returncode != 0:
            message = f"mount -o remount,{mode} {self.path} failed: {done.stderr.strip()}"
            if read_only and "busy" in done.stderr.lower():
                raise MountBusy(message)
            raise MountError(message)
        self.read_only = read_only

    def unmount(self) -> None:
        """Unmount; falls back to a lazy unmount when a process still holds files in the mount."""
        done = _run(["umount", str(self.path)])
        if done.returncode != 0:
            lazy = _run(["umount", "--lazy", str(self.path)])
            if lazy.returncode != 0:
                raise MountError(f"umount {self.path} failed: {done.stderr.strip()} / {lazy.stderr.strip()}")


@contextmanager
def mounted_tmpfs(path: Path, size_bytes: int) -> Iterator[Tmpfs]:
    """Mount a tmpfs of ``size_bytes`` at ``path`` for the block; always unmounted afterwards.

    Call ``require_mount_capability()`` first so a machine without the privilege skips (or, in CI, fails)
    with a clear reason instead of a mount error.
    """
    path.mkdir(parents=True, exist_ok=True)
    done = _run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)])
    if done.returncode != 0:
        raise MountError(f"mount -t tmpfs at {path} failed: {done.stderr.strip()}")
    fs = Tmpfs(path, size_bytes)
    try:
        yield fs
    finally:
        fs.unmount()
