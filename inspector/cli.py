"""The `inspector` command line. Each subcommand lives in inspector/commands/<name>.py with a
`register(subparsers)` function; bad input ends in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import codecs
import importlib
import logging
import os
import re
import sys
import traceback

from model.errors import InspectorError, denied, os_exit_code, write_fix

# what a script or a line's PLC reads from `$?`; 1 is never a crash, which Python's own exit status would make it
EXIT_STATUS = """exit status (every command):
  0    done (inspect --exit-code: every part PASSed)
  1    done, and something judged failed: inspect --exit-code a part FAILed, config validate the config is invalid,
       export --verify an export drifted, reload the reload failed
  2    bad input (a file, folder, option or config): one line on stderr naming it and the fix
  70   an internal error (a bug): a traceback on stderr, to report
  75   a condition that may pass (a full disk, a disk error): run it again later; the systemd unit restarts on it
  130  interrupted (Ctrl-C)
  141  its output's reader went away (`| head`), as a shell gives a command a broken pipe stopped

With --json, stdout holds only the JSON document (messages, notes and progress go to stderr), and is empty where
the command ends in an error before any result. Where some inputs were done and others not (inspect of several
images, export of several formats), the JSON names both and the exit status is the error's."""
INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h), beside 75 EX_TEMPFAIL
BROKEN_PIPE = 141  # 128 + SIGPIPE

COMMANDS = ["fit", "inspect", "evaluate", "threshold", "reload", "report", "review", "bench", "serve", "config", "export", "synth", "demo"]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # "--roi -1,40,160,160" is a value, not an option: before 3.13 argparse took only "-1" or "-1.5" for numbers, so
        # the region's own range check never saw it (3.13 matches any "-" and digit start, as this does)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> None:  # one line instead of usage + message
        raise InspectorError(f"{self.prog}: {message} (see {self.prog} --help)")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if not hasattr(namespace, "_parsed_by"):  # the innermost (sub)command's parser sets it first
            namespace._parsed_by = self.prog
        return namespace, extras

    def parse_args(self, args=None, namespace=None):
        # argparse reports a subcommand's unknown options from the top parser: `inspect ... --jsn` read "inspector:
        # unrecognized arguments: --jsn (see inspector --help)", whose help lists no option of inspect's
        argv = sys.argv[1:] if args is None else [str(a) for a in args]
        try:
            namespace, extras = self.parse_known_args(argv, namespace)
            if extras:
                prog = getattr(namespace, "_parsed_by", self.prog)
                raise InspectorError(f"{prog}: unrecognized arguments: {' '.join(extras)} (see {prog} --help)")
        except InspectorError as exc:
            if not (hint := _dash_path_hint(argv)):
                raise
            raise InspectorError(f"{exc}{hint}") from None
        return namespace


def _dash_path_hint(argv: list[str]) -> str:
    """How to name a file or folder whose name starts with "-", where one was given: argparse takes it for an option, and
    `inspector threshold -station3` read "the following arguments are required: MODEL", naming neither it nor the fix."""
    given = argv[:argv.index("--")] if "--" in argv else argv
    dashed = [a for a in given if a.startswith("-") and not a.startswith("--") and not re.match(r"-\.?\d", a) and os.path.lexists(a)]
    return (f"; {dashed[0]} reads as an option: to name the file or folder {dashed[0]}, write ./{dashed[0]} "
            "(or put -- before it)") if dashed else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inspector", description="Industrial visual inspection: fit, inspect, evaluate, serve, report.",
                     epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    from inspector.version import __version__

    parser.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"inspector.commands.{name}").register(sub)
    return parser


class _Said(logging.Handler):
    """Python's last resort, the handler of a record logged where nothing set up a log (every command but `serve`, whose
    log is its own): a warning the code a command runs logs (a store `review` upgraded, a camera URL `config validate
    --here` read) was printed bare, as often as logged (twice), in a process of its own only (a test's caught it)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = one_line(record.getMessage())
        except Exception:
            self.handleError(record)
            return
        if text not in self.said:
            self.said.add(text)
            print(f"warning: {text}", file=sys.stderr)


def _open_closed_std_fds() -> None:
    """Descriptors 0-2 that were closed (`inspector fit ... 2>&-`, a supervisor that closes them) opened on /dev/null:
    Python left sys.stderr None there (fit and eval ended in an AttributeError traceback, exit 70, no checkpoint), and
    the first file opened took the number, where a library's warning to fd 2 would have been written into it."""
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, or a lower one also closed
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None or getattr(sys, name).fileno() == fd:
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False, errors="backslashreplace"))


def main(argv: list[str] | None = None) -> int:
    _open_closed_std_fds()
    before, logging.lastResort = logging.lastResort, _Said()
    try:
        return _run(argv)
    finally:
        logging.lastResort = before


def _bytes_or_escape(exc: UnicodeError) -> tuple[str | bytes, int]:
    """surrogateescape's bytes for a file name's byte, backslashreplace's escape for a letter the stream cannot encode."""
    c = exc.object[exc.start]
    if isinstance(exc, UnicodeEncodeError) and 0xDC80 <= ord(c) <= 0xDCFF:
        return bytes([ord(c) - 0xDC00]), exc.start + 1
    return c.encode("ascii", "backslashreplace").decode("ascii"), exc.start + 1


codecs.register_error("inspector.bytes_or_escape", _bytes_or_escape)


def _run(argv: list[str] | None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name not in UTF-8 (lone surrogates) crashed a print after the work
        errors = getattr(stream, "errors", None)
        if errors in ("strict", "surrogateescape") and hasattr(stream, "reconfigure"):
            # the C locale without UTF-8 mode (PYTHONUTF8=0) gives an ASCII stdout whose surrogateescape takes a file
            # name's bytes but no other letter: `inspect --lang zh` (or a Chinese type) ended in a traceback there
            stream.reconfigure(errors="backslashreplace" if errors == "strict" else "inspector.bytes_or_escape")
    try:
        args = build_parser().parse_args(argv)
        _check_environment()
        return int(args.func(args) or 0)
    except InspectorError as exc:
        print(f"error: {exc if isinstance(exc, Problems) else one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `inspector eval --json | head`: quiet, but not 0, which under `set -o pipefail` read as
        return BROKEN_PIPE    # `inspect --exit-code`'s "every part PASSed" of parts never inspected
    except PermissionError as exc:  # one a command did not foresee (Path.exists raises it, unlike os.path.exists)
        print(f"error: {one_line(denied(exc, str(exc.filename or 'a file')))}", file=sys.stderr)
        return 2
    except OSError as exc:  # likewise, e.g. a disk that filled up
        what = f"{exc.filename}: {exc.strerror or exc}; {write_fix(exc)}" if exc.filename else f"{exc}; {write_fix(exc)}"
        print(f"error: {one_line(what)}", file=sys.stderr)
        return os_exit_code(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: Python's own exit status 1 read as `inspect --exit-code`'s FAIL, or an invalid config
        if isinstance(exc, RuntimeError) and str(exc) == "can't start new thread":  # not a bug: `ulimit -u`, TasksMax
            print("error: cannot start a thread: this user's limit on processes and threads is reached (ulimit -u, a unit's "
                  "TasksMax); stop other processes or raise the limit, then run it again", file=sys.stderr)
            return 75
        traceback.print_exc()
        print(f"error: {one_line(f'internal error ({type(exc).__name__}); please report it with the traceback above')}", file=sys.stderr)
        return INTERNAL_ERROR


def _check_environment() -> None:
    """What the process was started with that the libraries would take badly, checked before they load."""
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's oneMKL then ended the process: 'Intel oneMKL FATAL ERROR: Cannot load libtorch_cpu.so'
        raise InspectorError(f"the current folder ({os.environ.get('PWD', '?')}) no longer exists (deleted or moved away); "
                             "cd to a folder that exists and run the command again") from None
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads is not None and not all(re.fullmatch(r"\s*\+?0*[1-9]\d*\s*", n) for n in threads.split(",")):
        # OpenMP ignores it, with a raw 'libgomp: Invalid value for environment variable OMP_NUM_THREADS' in every command
        raise InspectorError(f"OMP_NUM_THREADS={threads!r}: not a number of threads; set a whole number from 1 (e.g. "
                             "OMP_NUM_THREADS=2), or unset it")
    if "ORT_DISABLE_TELEMETRY" not in os.environ and not _can_make(os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "Microsoft")):
        # onnxruntime keeps a telemetry id there; where it cannot (a service user's missing or read-only home), it
        # printed a raw coloured '[W:onnxruntime:Default, telemetry_1ds.cc:613 ...] Failed to persist telemetry device ID'
        os.environ["ORT_DISABLE_TELEMETRY"] = "1"


def _can_make(folder: str) -> bool:
    """Whether `folder` exists writable, or its nearest existing parent is a folder this user may write to."""
    path = os.path.abspath(folder)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


# what splits a line (str.splitlines, a terminal, a log reader): a file or folder name may hold any of them
_BREAKS = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7f, 0x85, 0x2028, 0x2029) if chr(c) != "\t"}


def one_line(message: str) -> str:
    """The message with any line break or control character in it written as an escape (`\\n`): a path holding a
    newline (a name pasted from a spreadsheet, a folder made by a script) split the error over two lines, the second
    without `error:`, as a log reader or a test of 'one line' sees it."""
    return message.translate(_BREAKS)


class Problems(InspectorError):
    """Several problems with one input, each on its own line under a head line (`config X: 3 problems:`), as `config
    validate` prints them. Each line is escaped here, with `one_line`: a path holding a newline split a problem in two."""

    def __init__(self, head: str, problems: list[str]) -> None:
        super().__init__(one_line(head) + "".join(f"\n  {one_line(p)}" for p in problems))


if __name__ == "__main__":
    sys.exit(main())
