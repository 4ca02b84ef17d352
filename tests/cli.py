"""Running `inspector` subcommands in-process from tests, and the shape every bad input must take."""

from __future__ import annotations

from inspector.cli import main


def cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `inspector ARGV`, run in this process."""
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    """Exit code 2 and one `error: ...` line on stderr naming each needle, never a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
