"""Output folders and files: folders checked before any long work (a bad --out should cost seconds, not a fit), files written whole."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.errors import InspectorError, RetryLater, what_is_wrong_with, write_fix

NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, NTFS)


def writable_folder(path: str | Path, flag: str = "--out", keep: bool = True) -> Path:
    """Make sure files can be written into the folder `path`, making it (and its parents) if missing; one-line
    InspectorError naming `flag` if not. keep=False removes again the folders it made (a check, no side effect)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InspectorError(f"{flag} {out}: is a file; give a folder")
    if why := dead_link(out):  # mkdir said "File exists" of it
        raise InspectorError(f"{flag} {out}: {why}")
    made = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise InspectorError(f"{flag} {out}: cannot be written ({exc.strerror or exc}); choose a writable folder") from None
    if not keep:
        for p in made:  # deepest first
            p.rmdir()
    return out


def dead_link(out: Path) -> str | None:
    """What is wrong with an output folder `out` that is a link leading nowhere (to a share not mounted) or back to
    itself, with the fix; None for anything else. mkdir said "File exists" of it, and a loop raised RuntimeError."""
    if not os.path.islink(out) or os.path.exists(out):  # os.path's: Path's raised of a name too long
        return None
    why = what_is_wrong_with(out, "folder")
    return f"{why}; {'remove the link' if '(a loop)' in why else 'mount or make the folder it leads to'}, or give another folder"


def write_new(path: Path, data: bytes) -> None:
    """`data` into a file made new at `path` (O_EXCL, O_NOFOLLOW): a temporary name is predictable, and a link planted
    there was written through to its target. What is there (a crash's leftover, or a link) is removed first: the link
    itself, not its target."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        path.unlink()
        fd = os.open(path, flags, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def synced(path: Path) -> None:
    """`path` (a file, or a folder: its entries) on the disk (fsync). A folder where that cannot be done (Windows opens
    none) is left as it is, and so is a file system that cannot sync (EINVAL, ENOTSUP)."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    if path.is_dir():
        if not hasattr(os, "O_DIRECTORY"):
            return
        flags |= os.O_DIRECTORY
    else:
        flags |= getattr(os, "O_NOFOLLOW", 0)  # a link planted there since: not what is synced through
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def replace_files(files: dict[Path, bytes]) -> None:
    """Write files whole, and files that belong together (weights and the manifest hashing them) at once: each
    goes to a temporary file of this process's own first (two writers must not share one), then all are renamed
    into place with Ctrl-C and SIGTERM held back, so a reader never sees half a file and an interrupted or failed
    write leaves the old set whole (an interrupted `fit --force` left new weights under the old manifest, and
    neither model loaded). No temporary file is left behind. A file replaced keeps its mode and group (a root
    `threshold --set` under umask 077 left the daemon a checkpoint it could not read, found at its next start); a new
    one's follow the umask, as any file the user writes."""
    tmps = {path: _tmp_beside(path) for path in files}
    try:
        for path, data in files.items():
            write_new(tmps[path], data)
            _keep_access(path, tmps[path])
        with _signals_held():
            for path, tmp in tmps.items():
                tmp.replace(path)
    finally:
        for tmp in tmps.values():
            if tmp.is_file():
                tmp.unlink()


def shortened(name: str, most: int, key: bytes) -> str:
    """`name` cut to fit, with `-` and 8 hex digits of `key`'s sha256 after it, in `most` bytes (of os.fsencode, as a
    file name's): the hash keeps names alike but for what was cut apart."""
    while len(os.fsencode(name)) > most - 9:  # by characters: only those of several bytes need more than one cut
        name = name[:-1]
    return f"{name}-{hashlib.sha256(key).hexdigest()[:8]}"


def _tmp_beside(path: Path) -> Path:
    """This process's temporary file for `path`: a name of 244-255 bytes, legal, had no room for `.<pid>.tmp`, and
    its write failed as "File name too long"."""
    tail = f".{os.getpid()}.tmp"
    if len(os.fsencode(path.name + tail)) <= NAME_MAX:
        return path.with_name(path.name + tail)
    return path.with_name(f".{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:32]}{tail}")


def stale_tmp(path: Path) -> bool:
    """Whether `path` is a temporary file `replace_files` made (`<name>.<pid>.tmp`) for a process no longer running:
    one killed while it wrote (SIGKILL, a power cut) left it, half written, and nothing else ever removed it."""
    head, _, tail = path.name.rpartition(".")
    pid = head.rpartition(".")[2]
    if tail != "tmp" or not pid.isdigit() or not path.is_file():
        return False
    return _gone(int(pid))


def _gone(pid: int) -> bool:
    """Whether no process `pid` is running (this one is)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # alive under another user (EPERM), or no pid: left alone
        return False
    return False


@contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder in the system's temp folder, named `<prefix><pid>-...`, removed at the end; those of `prefix`
    that a process no longer running made are removed first: a run killed (SIGKILL, SIGTERM) left its own, a model's
    size, for good."""
    import shutil

    for old in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = old.name[len(prefix):].partition("-")[0]
        if pid.isdigit() and _gone(int(pid)) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-") as tmp:
        try:
            yield Path(tmp)
        except OSError as exc:  # 'error: [Errno 28] No space left on device; free space' named no disk: not the output's
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or (exc.filename and not str(exc.filename).startswith(tmp)):
                raise
            raise RetryLater(f"the temporary folder {Path(tmp).parent} is full ({exc.strerror}); free space there, or set "
                             "TMPDIR to a folder on a disk with room, then run it again") from None


def remove_stale_tmps(folder: Path) -> None:
    """Remove from `folder` the temporary files of writers that were killed (`stale_tmp`)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for p in entries:
        if stale_tmp(p):
            p.unlink(missing_ok=True)


def _keep_access(old: Path, new: Path) -> None:
    """Give `new` the mode and group of `old`, where there is an `old` (the group only where this user may set it)."""
    try:
        st = old.stat()
    except FileNotFoundError:
        return
    os.chmod(new, st.st_mode & 0o7777)
    if hasattr(os, "chown"):
        try:
            os.chown(new, -1, st.st_gid)
        except PermissionError:
            pass


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends. Their handlers are swapped for ones that only note the signal
    (masking it would hold it back from this thread only, and another thread of torch's or tqdm's takes it);
    Python runs handlers in the main thread, so elsewhere the block is just very short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = {sig: signal.signal(sig, lambda number, _frame: caught.append(number)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])


def _flock(path: Path, wait: bool, flags: int = os.O_RDONLY) -> int | None:
    """A descriptor of `path` holding an exclusive flock (None where flock is missing); BlockingIOError if another
    process holds it and `wait` is False."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        fix = f"; {write_fix(exc)}" if exc.errno == errno.ENAMETOOLONG else ""  # the one cause here its user can mend
        raise InspectorError(f"{path}: cannot be opened ({exc.strerror or exc}){fix}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    return fd


def hold_lock_file(path: Path, busy: str) -> int | None:
    """An exclusive lock on the file `path` (created if missing), held until the returned descriptor is closed;
    InspectorError `busy` at once if another process holds it."""
    try:
        return _flock(path, wait=False, flags=os.O_RDWR | os.O_CREAT)
    except BlockingIOError:
        raise InspectorError(busy) from None


@contextmanager
def output_lock(out: Path, what: str, busy: str | None = None) -> Iterator[None]:
    """Refuse at once a second command writing to `out` while this one does (`busy`: what it is told, if not that
    another `what` writes there). Its lock file, `.<name>.lock` beside `out`, is removed again; where `out`'s parent
    does not exist yet, none is taken."""
    if dead_link(out):  # resolve() raised RuntimeError of a loop; the command's own checks say what is wrong
        yield
        return
    target = out.resolve()
    name = os.fsencode(target.name)
    if len(name) > NAME_MAX:  # said of --out, not of its lock file (".aaaa….lock: cannot be opened") with no fix
        raise InspectorError(f"--out {out}: its name is {len(name)} bytes, too long for a file name; "
                             f"{write_fix(OSError(errno.ENAMETOOLONG, 'File name too long'))}")
    lock = target.parent / f".{target.name}.lock"
    if len(name) + 6 > NAME_MAX:  # a name that fits, but not with ".…lock" around it
        lock = target.parent / f".{hashlib.sha256(name).hexdigest()[:32]}.lock"
    if not (lock.parent.is_dir() and os.access(lock.parent, os.W_OK | os.X_OK)):  # the command's own checks say what is wrong
        yield
        return
    busy = busy or f"--out {out}: another {what} is writing there; wait for it to finish, or give another --out"
    while True:
        fd = hold_lock_file(lock, busy)
        try:  # locked the file now at that path, not one its last holder removed meanwhile
            if fd is None or os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        if fd is not None:
            lock.unlink(missing_ok=True)
            os.close(fd)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a folder (flock on the folder itself, so no lock file is left in it) while a
    manifest in it is read, changed and written; waits for another holder. A no-op where flock is missing."""
    fd = _flock(folder, wait=True)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock
