"""The one error type for bad user input: the CLI prints its message on one line and exits 2."""


from __future__ import annotations

import importlib
from types import ModuleType

DIST = "inspector-edge"  # the distribution's name on PyPI (`inspector` there is another project)


class InspectorError(Exception):
    """A problem with something the user gave us (a path, an image, a checkpoint, an option).

    The message names the input and says what to do; it is shown without a traceback.
    """

    exit_code = 2  # systemd's unit does not restart on it: restarting cannot mend a config


class RetryLater(InspectorError):
    """A condition that may pass by itself (a full disk): exit code 75 (EX_TEMPFAIL), which the unit restarts on."""

    exit_code = 75


def first_few(errors: list, shown: int = 3) -> str:
    """The first `shown` of `errors` (their messages) joined for one line, with how many more there are: a check that
    names every unusable file at once, not the first one a run at a time."""
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(map(str, errors[:shown])) + more


def need(module: str, extra: str, purpose: str) -> ModuleType:
    """`module` imported, or an InspectorError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        also = " (or [gpu] on a machine with an NVIDIA GPU)" if extra == "cpu" else ""
        raise InspectorError(f"{purpose} needs the {module} package: pip install '{DIST}[{extra}]'{also}") from None


def need_onnx(purpose: str) -> None:
    """What exporting to ONNX and running it take (the cpu or gpu extra), checked before long work starts."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        need(module, "cpu", purpose)


def user_name() -> str:
    """This process's user, as an error names who lacks access."""
    import os

    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # Windows; a uid without a name (containers)
        return f"uid {os.geteuid()}" if hasattr(os, "geteuid") else "this user"


def denied(exc: PermissionError, what: str) -> str:
    """One line for a permission error on `what`, naming the file and the user."""
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) not in what else ""
    return f"{what}: permission denied{where}; give this user ({user_name()}) access to it and its folder, or run as one who has it"


def write_fix(exc: OSError) -> str:
    """What to do about a file that could not be written, from why."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space, then run it again"
    if exc.errno == errno.EROFS:  # "give this user (root) write access" mended nothing on a read-only mount
        return "remount its disk writable, or use a folder on a writable disk"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"give this user ({user_name()}) write access to it, or choose another folder"
    if exc.errno == errno.ENAMETOOLONG:  # a pasted list, a glob gone wrong: "check the folder and the disk" mended nothing
        return "give a shorter path (each name at most 255 bytes, the whole path at most 4095)"
    return "check the folder and the disk"


def os_exit_code(exc: OSError) -> int:
    """2 for what someone must fix (permissions, a read-only disk, a name too long), else 75: a full disk, EIO, EMFILE or
    a stale NFS handle may pass, and the unit restarts on 75 (on 2 it does not; 1 is `inspect --exit-code`'s FAIL)."""
    import errno

    return 2 if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG) else RetryLater.exit_code


def in_utf8(text: str) -> bool:
    """Whether `text` is UTF-8 text: an argument typed in a terminal or script of another encoding comes through
    Python as lone surrogates, which every file, report and database (all UTF-8) refuse at writing, as a traceback."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def not_utf8(what: str, text: str) -> str | None:
    """The one-line complaint for an argument `what` whose `text` is not UTF-8 (see in_utf8), or None."""
    if in_utf8(text):
        return None
    return f"{what} {text[:80]!r}: not UTF-8 text (a terminal or script in another encoding); give it in UTF-8"


def what_is_wrong_with(path, noun: str = "file") -> str | None:
    """Why `path` is no regular file to read, in the words every input that takes a file uses: "no such file", "a folder,
    not a `noun`", "not a regular file (a device, FIFO or socket)" (reading /dev/zero ran out of memory, a FIFO waited
    for a writer for good); None for a regular file or a link to one. Other OSErrors (a name too long, a folder
    without access) are raised, for the caller's own words."""
    import errno
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a link that leads back to itself (a loop)"
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise
        if os.path.islink(path):
            return f"a link to {os.readlink(path)}, which leads nowhere"
        return "no such file"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"a folder, not {'an' if noun[:1] in 'aeiou' else 'a'} {noun}"
    return "not a regular file (a device, FIFO or socket)"


def file_problem(path, noun: str = "file") -> str | None:
    """what_is_wrong_with, any other OSError said as "cannot be read (why)", for a caller with no words of its own."""
    try:
        return what_is_wrong_with(path, noun)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
