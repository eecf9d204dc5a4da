"""Replace a folder in one atomic step, serialise writers with an advisory lock, and recover interrupted swaps.

The new content is written to a hidden sibling `.NAME.tmp-<random>`, then swapped with `NAME`. On Linux the swap
is one `renameat2(RENAME_EXCHANGE)` call: a reader sees the old folder or the new one, never none. Elsewhere (or on
a file system without it) two renames are used, `NAME` -> `.NAME.old-<random>` and the staged folder -> `NAME`;
between them `NAME` is missing, and the next save or load restores it. Writers hold `fcntl.flock` on `.NAME.lock`
for the whole save, so concurrent saves run one after the other (without `fcntl` there is no lock).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

try:
    import fcntl
except ImportError:  # not a POSIX system: saves are not serialised
    fcntl = None

# called with the name of each step a save reaches ("staged", "moved_aside", "swapped", ...), so a test can stop
# the process there; None in normal use
FAULT_HOOK: Optional[Callable[[str], None]] = None

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _load_renameat2():
    """libc's `renameat2`, or None where the C library has none (not Linux, glibc < 2.28, musl < 1.2.3)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _load_renameat2()


def fault(step: str) -> None:
    """Report reaching `step` to `FAULT_HOOK`, if one is set."""
    if FAULT_HOOK is not None:
        FAULT_HOOK(step)


def staged_prefix(path: Path) -> str:
    """Name prefix of the folders a save stages beside `path`."""
    return f".{path.name}.tmp-"


def old_prefix(path: Path) -> str:
    """Name prefix of the folder the two-rename fallback moves the previous `path` to."""
    return f".{path.name}.old-"


def _leftover_names(path: Path) -> list[str]:
    """Names of the staged and moved-aside siblings of `path` (saves that did not finish, or one in progress)."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [name for name in names if name.startswith((staged_prefix(path), old_prefix(path)))]


def leftovers(path: Path) -> list[Path]:
    """Under the lock: the leftover folders of interrupted saves beside `path`, newest first."""
    found = [path.parent / name for name in _leftover_names(path)]
    found = [p for p in found if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


@contextmanager
def folder_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `.NAME.lock` beside `path` (waiting for it); the file is removed after.

    The lock file is unlinked while still held, so a waiter may wake up holding a file no longer at that name: it
    checks that the locked file is still the one at the name and otherwise tries again.
    """
    if fcntl is None:
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, named = os.fstat(fd), os.stat(lock)
            if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                break
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the two existing paths in one atomic step; False where the system or file system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _swap(staged: Path, path: Path) -> None:
    """Make `staged` visible at `path`; the previous folder, if any, is deleted (after an exchange it is at the
    name `staged`, which the caller deletes)."""
    if not os.path.lexists(path):
        os.rename(staged, path)
        fault("swapped")
        return
    if _exchange(staged, path):
        fault("swapped")
        return
    aside = path.parent / f"{old_prefix(path)}{staged.name[len(staged_prefix(path)):]}"
    os.rename(path, aside)
    try:
        fault("moved_aside")
        os.rename(staged, path)
    except BaseException:
        os.rename(aside, path)
        raise
    fault("swapped")
    shutil.rmtree(aside, ignore_errors=True)


def recover(path: Path, is_complete: Callable[[Path], bool]) -> None:
    """Under the lock: if `path` is missing, restore the newest complete leftover (a staged folder before a
    moved-aside one), then delete every other leftover of an interrupted save."""
    found = leftovers(path)
    if not os.path.lexists(path):
        for candidate in sorted(found, key=lambda p: not p.name.startswith(staged_prefix(path))):
            if is_complete(candidate):
                os.rename(candidate, path)
                break
    for leftover in found:
        shutil.rmtree(leftover, ignore_errors=True)


def recover_if_interrupted(path: Path, is_complete: Callable[[Path], bool]) -> None:
    """Before a load: repair `path` only if an interrupted save left traces; skipped where the folder cannot be
    locked (read-only), since there nothing was written either."""
    path = Path(os.path.realpath(path))
    if (os.path.lexists(path) and not _leftover_names(path)) or not path.parent.is_dir():
        return
    try:
        with folder_lock(path):
            recover(path, is_complete)
    except OSError:  # a read-only folder or file system: load what is there
        return


def replace_folder(path: Path, write: Callable[[Path], None], check: Callable[[Path], None],
                   is_complete: Callable[[Path], bool]) -> None:
    """Write a new folder with `write(staged)` and swap it in at `path` atomically, holding the lock throughout.

    `check(path)` runs under the lock after recovery and raises to refuse the destination (nothing is touched);
    `is_complete(folder)` tells a leftover worth restoring from a partial one.
    """
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path):
        recover(path, is_complete)
        check(path)
        staged = Path(tempfile.mkdtemp(prefix=staged_prefix(path), dir=path.parent))
        try:
            write(staged)
            fault("staged")
            _swap(staged, path)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
