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

For a data dir that turns read-only under open files, as a disk does when the kernel meets a filesystem
error (ext4 ``errors=remount-ro``):

- ``mounted_ext4(path, size_bytes)``: a small ext4 image on a loop device, mounted ``errors=remount-ro`` at
  ``path``; unmounted and deleted afterwards.
- ``Ext4Image.fail_read_only()``: injects a filesystem error through ext4's ``trigger_fs_error``; the
  kernel turns the filesystem read-only at once, and every write, also into files already open, fails with
  EROFS. As in production, only an unmount clears it: ``Ext4Image.repair()`` unmounts (the processes using
  it must have stopped), runs ``e2fsck`` and mounts the image again.

Mounting needs root and the mount capability (a privileged container in CI). ``require_mount_capability()``
checks both by mounting a probe tmpfs, ``require_ext4_capability()`` by mounting a probe ext4 image (loop
devices, e2fsprogs): without them they skip the test, except under ``CI=true`` where they fail with a
message that says what is missing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
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


def _skip_or_fail(what: str, problem: str | None) -> None:
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"storage fault tests need {what}: {problem}", pytrace=False)
    pytest.skip(f"storage fault tests need {what}: {problem}")


def require_mount_capability() -> None:
    """Skip the calling test when tmpfs mounts are impossible; fail instead under ``CI=true``."""
    _skip_or_fail("tmpfs mounts", _mount_problem())


def _ext4_problem() -> str | None:
    """Why ext4 loop mounts with error injection are impossible here, or ``None`` when a probe worked."""
    problem = _mount_problem()
    if problem is not None:
        return problem
    for tool in ("mkfs.ext4", "e2fsck"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (Debian package 'e2fsprogs')"
    probe = Path(tempfile.mkdtemp(prefix="ext4-probe-"))
    try:
        with mounted_ext4(probe / "mnt", 2 * 1024 * 1024) as image:
            if not image.error_trigger.exists():
                return f"the kernel has no {image.error_trigger} (ext4 error injection)"
        return None
    except MountError as exc:
        return f"{exc} (loop devices need a privileged container)"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def require_ext4_capability() -> None:
    """Skip the calling test when ext4 loop mounts with error injection are impossible; fail under CI."""
    _skip_or_fail("ext4 loop mounts", _ext4_problem())


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


def _attach_loop(image: Path) -> str:
    """Attach ``image`` to a free loop device; returns the device path.

    A container's /dev holds only the device nodes that existed when it started, while the kernel creates
    free loop devices on demand: a missing node is created here. Raises ``MountError`` when no device can
    be attached (another process may take a free device first: a few attempts).
    """
    error = ""
    for _ in range(5):
        found = _run(["losetup", "-f"])
        if found.returncode != 0:
            raise MountError(f"losetup -f failed: {found.stderr.strip()}")
        device = found.stdout.strip()
        if not Path(device).exists():
            with contextlib.suppress(FileExistsError):
                os.mknod(device, 0o660 | stat.S_IFBLK, os.makedev(7, int(device.removeprefix("/dev/loop"))))
        done = _run(["losetup", device, str(image)])
        if done.returncode == 0:
            return device
        error = done.stderr.strip()
    raise MountError(f"losetup of {image} failed: {error}")


class Ext4Image:
    """An ext4 image file mounted through a loop device; see the module docstring."""

    def __init__(self, path: Path, image: Path, device: str) -> None:
        self.path = path
        self.image = image
        self.device = device
        self.mounted = False

    def mount(self) -> None:
        """Mount the image read-write with ``errors=remount-ro`` (the kernel's reaction to an error)."""
        done = _run(["mount", "-o", "errors=remount-ro", self.device, str(self.path)])
        if done.returncode != 0:
            reason = done.stderr.strip()
            raise MountError(f"mount {self.device} ({self.image}) at {self.path} failed: {reason}")
        self.mounted = True

    @property
    def error_trigger(self) -> Path:
        """ext4's sysfs file that reports a filesystem error when written to."""
        return Path("/sys/fs/ext4") / Path(self.device).name / "trigger_fs_error"

    def fail_read_only(self) -> None:
        """Report a filesystem error: the kernel makes the filesystem read-only at once (open files too)."""
        self.error_trigger.write_text("storage fault injected by a test\n")

    def repair(self) -> None:
        """Unmount, check with ``e2fsck -fy`` and mount read-write again (nothing may use the mount).

        Raises ``MountError`` when e2fsck cannot repair the image (exit code 4 or more).
        """
        self.unmount()
        done = _run(["e2fsck", "-fy", self.device])
        if done.returncode >= 4:
            raise MountError(f"e2fsck {self.device} failed ({done.returncode}): {done.stdout}{done.stderr}")
        self.mount()

    def unmount(self) -> None:
        """Unmount (lazily when a process still holds files in it); the loop device stays attached."""
        if not self.mounted:
            return
        done = _run(["umount", str(self.path)])
        if done.returncode != 0:
            lazy = _run(["umount", "--lazy", str(self.path)])
            if lazy.returncode != 0:
                raise MountError(f"umount {self.path} failed: {done.stderr.strip()} / {lazy.stderr.strip()}")
        self.mounted = False


@contextmanager
def mounted_ext4(path: Path, size_bytes: int) -> Iterator[Ext4Image]:
    """An ext4 image of ``size_bytes`` (beside ``path``) mounted at ``path`` for the block; always unmounted
    and deleted afterwards. Call ``require_ext4_capability()`` first."""
    path.mkdir(parents=True, exist_ok=True)
    image = path.parent / f"{path.name}.ext4"
    with open(image, "wb") as handle:
        handle.truncate(size_bytes)
    try:
        done = _run(["mkfs.ext4", "-q", "-F", str(image)])
        if done.returncode != 0:
            raise MountError(f"mkfs.ext4 {image} failed: {done.stderr.strip()}")
        fs = Ext4Image(path, image, _attach_loop(image))
        try:
            fs.mount()
            yield fs
        finally:
            try:
                fs.unmount()
            finally:
                # Detached now, or (still busy after a lazy unmount) as soon as the last user is gone.
                _run(["losetup", "-d", fs.device])
    finally:
        image.unlink(missing_ok=True)
