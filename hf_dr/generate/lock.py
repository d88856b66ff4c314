"""One run at a time per output folder: the run's main process holds an exclusive ``flock`` on ``.hf-dr.lock``.

The lock is taken before the run reads anything in the folder and released after its manifest is written (or when
it fails), so two runs started into one folder (a double-submitted job) cannot interleave their config, shards and
manifest: the second is refused at once, naming the holder recorded in the lock file (host, pid, start time, run
fingerprint). The kernel releases a ``flock`` when its process dies, so a killed run leaves at most a stale lock file
that the next run takes over; a run that ends removes its lock file. Only the main process of a distributed run
takes the lock (the other ranks work under it).

Example:
    >>> import os, tempfile
    >>> folder = os.path.join(tempfile.mkdtemp(), "run")
    >>> with RunLock(folder) as lock:
    ...     try:
    ...         RunLock(folder).acquire()
    ...     except RunLockedError as err:
    ...         print("in use by another reinforce run" in str(err))
    True
    >>> os.path.exists(folder)  # a folder the lock made, left empty by a failed run, goes with it
    False
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from typing import Any

from hf_dr.errors import InvalidConfigError, RunLockedError
from hf_dr.files import write_error

LOCK_FILE = ".hf-dr.lock"


class RunLock:
    """The exclusive lock of ``output_dir`` (a no-op unless ``owner``: only a run's main process takes it).

    Args:
        output_dir (`str`): the run's folder (created if needed; removed again on release if it made it and the
            folder is left empty).
        owner (`bool`, *optional*, defaults to True): False on the other processes of a distributed run.
    """

    def __init__(self, output_dir: str, owner: bool = True) -> None:
        self.output_dir, self.owner = output_dir, owner
        self.path = os.path.join(output_dir, LOCK_FILE)
        self._fd: int | None = None
        self._made_folder = False
        self._holder: dict[str, Any] = {}

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def acquire(self) -> RunLock:
        """Takes the lock, or raises :class:`RunLockedError` naming the folder, the holder and the fix."""
        if not self.owner or self._fd is not None:
            return self
        if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
            raise InvalidConfigError(f"--output-dir {self.output_dir!r} is a file, not a folder; pass a folder path.")
        self._made_folder = not os.path.isdir(self.output_dir)
        try:  # a read-only or full folder is named before anything else is read or written
            os.makedirs(self.output_dir, exist_ok=True)
        except OSError as err:
            raise write_error(self.output_dir, err) from err
        for _ in range(100):  # the holder may remove its lock file between our open and our lock: lock the new one
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise write_error(self.path, err) from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLockedError(self._refusal()) from None
            except OSError as err:  # ENOLCK, ENOSYS...: a filesystem without flock (Lustre without -o flock, CIFS)
                os.close(fd)
                self._fd = -1
                self.release()
                raise RunLockedError(
                    f"cannot lock {self.path}: the filesystem of {self.output_dir!r} does not support file locks "
                    f"({err.strerror}). Write the run to a folder on a filesystem with flock (e.g. local disk, NFSv4) "
                    "and copy it afterwards."
                ) from err
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise RunLockedError(f"cannot lock {self.path}: its file keeps changing under this run; check the folder.")
        self._fd = fd
        self._holder = {"host": socket.gethostname(), "pid": os.getpid(),
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fingerprint": None}
        self._write_holder()
        return self

    def record(self, fingerprint: str) -> None:
        """Adds the run's fingerprint to the holder recorded in the lock file, once the run is planned."""
        if self._fd is not None:
            self._holder["fingerprint"] = fingerprint
            self._write_holder()

    def release(self) -> None:
        """Removes the lock file and releases the lock (and the folder, if this lock made it and it is empty)."""
        if self._fd is None:
            return
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                if _same_file(self._fd, self.path):
                    os.remove(self.path)  # while still locked: a waiting run then locks a new file, never this one
            os.close(self._fd)
        else:  # never locked (no flock on this filesystem): the lock file we created is ours to remove
            with contextlib.suppress(OSError):
                os.remove(self.path)
        self._fd = None
        if self._made_folder:
            with contextlib.suppress(OSError):
                os.rmdir(self.output_dir)  # only if empty: the run failed before writing anything

    def _write_holder(self) -> None:
        data = json.dumps(self._holder, sort_keys=True).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def _refusal(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
            who = (f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}, "
                   f"fingerprint {str(holder.get('fingerprint'))[:12]}")
        except (OSError, ValueError, AttributeError):
            holder, who = {}, "a holder that has not recorded itself yet"
        stop = f"stop it (pid {holder.get('pid')} on {holder.get('host')})" if holder.get("pid") else "stop it"
        return (
            f"{self.output_dir!r} is in use by another reinforce run ({who}; lock file {self.path}). Wait for it to "
            f"finish, or {stop} and rerun to resume; to run both at once, give this one another --output-dir."
        )


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False
