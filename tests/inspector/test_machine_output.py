"""What scripts and a line's PLC rely on from every command: strict JSON on stdout, one line per message on stderr,
exit statuses that keep a crash apart from a FAIL, and help that names each option's default."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest

from inspector.cli import EXIT_STATUS, INTERNAL_ERROR, build_parser, main
from inspector.decision import DecisionConfig, decide
from inspector.result import InspectionResult
from tests.cli import assert_one_line_error, cli


def _strict(text: str):
    """json.loads refusing NaN and Infinity, as a strict reader (jq, JSON.parse) does."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_output_writes_nan_and_infinity_as_null(capsys):
    from inspector.commands.common import print_json

    print_json({"auroc": float("nan"), "speedups": [float("inf"), 1.5], "at": {"low": float("-inf")}, "name": "a\udcffb"})
    out = capsys.readouterr().out
    assert _strict(out) == {"auroc": None, "speedups": [None, 1.5], "at": {"low": None}, "name": "a\udcffb"}


def test_a_region_on_an_infinite_map_has_a_null_peak_in_the_record():
    amap = np.zeros((32, 32), np.float32)
    amap[4:12, 4:12] = np.inf  # an FP16 export overflowing
    verdict, regions = decide(float("inf"), amap, 1.0, 0.5, DecisionConfig())
    r = InspectionResult(inspection_id="i1", verdict=verdict, score=float("inf"), threshold=1.0, pixel_threshold=0.5,
                         regions=regions, anomaly_map=amap, image_shape=amap.shape, image_sha256="ab", model={}, timings_ms={})
    record = _strict(json.dumps(r.to_record()))
    assert record["score"] is None and [d["peak"] for d in record["defects"]] == [None]


def test_a_crash_exits_70_with_its_traceback_not_1_which_is_a_fail(capsys, monkeypatch, tmp_path):
    import inspector.commands.config as config_command

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(config_command, "validate", broken)
    rc, out, err = cli(capsys, "config", "validate", tmp_path / "station.yaml")
    assert rc == INTERNAL_ERROR == 70 and out == ""
    assert "Traceback" in err and "RuntimeError: a bug" in err
    assert err.splitlines()[-1].startswith("error: internal error (RuntimeError)")


def test_top_level_help_lists_the_exit_statuses(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and EXIT_STATUS.splitlines()[0] in out
    for code in ("0", "1", "2", "70", "75", "130"):
        assert any(line.split()[:1] == [code] for line in out.splitlines()), code


@pytest.mark.parametrize("argv, prog", [
    (["inspect", "m", "x.png", "--jsn"], "inspector inspect"),
    (["config", "validate", "a.yaml", "b.yaml"], "inspector config validate"),
    (["bench", "report", "--jsn"], "inspector bench report"),
])
def test_an_unknown_option_points_to_its_subcommands_help(capsys, argv, prog):
    rc, out, err = cli(capsys, *argv)
    assert_one_line_error(rc, err, f"{prog}: unrecognized arguments: ", f"(see {prog} --help)")
    assert out == ""


def _options(parser: argparse.ArgumentParser, name: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _options(p, f"{name} {sub}")
        elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield name, action


def test_every_option_with_a_default_names_it_in_its_help():
    from inspector.commands.bench import _parser as bench_parser

    missing = []
    for name, action in [*_options(build_parser(), "inspector"), *_options(bench_parser(), "inspector bench")]:
        if action.default in (None, False, True, [], argparse.SUPPRESS):
            continue  # a flag, or an option that is off unless given
        if "default" not in (action.help or "").lower():
            missing.append(f"{name} {action.option_strings[0]} (default {action.default!r})")
    assert not missing, missing


@pytest.fixture
def part(tiny_data):
    return sorted((tiny_data / "test/good").glob("*.png"))[0]


def test_inspect_json_keeps_each_error_and_note_on_one_line_and_names_what_it_left_out(capsys, tiny_ckpt, part, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    shutil.copy(part, folder / "good.png")
    (folder / "bad\nname.png").write_bytes(b"not an image")
    (folder / "gone.png").symlink_to(tmp_path / "share" / "gone.png")  # a link to a share no longer mounted
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, folder, "--json")
    doc = _strict(out)
    assert rc == 2
    assert [r["source"] for r in doc["results"]] == [str(folder / "good.png")]
    assert [e["path"] for e in doc["errors"]] == [str(folder / "bad\nname.png")]
    assert len(doc["notes"]) == 1 and "gone.png" in doc["notes"][0] and not doc["notes"][0].startswith("note:")
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("note: ") and lines[1].startswith("error: image ") and "bad\\nname.png" in lines[1], err


def test_inspect_json_has_an_empty_notes_list_when_nothing_was_left_out(capsys, tiny_ckpt, part, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    shutil.copy(part, folder / "good.png")
    rc, out, err = cli(capsys, "inspect", tiny_ckpt, folder, "--json")
    doc = _strict(out)
    assert rc == 0 and err == "" and doc["notes"] == [] and doc["errors"] == [] and doc["summary"]["inspected"] == 1


@pytest.mark.parametrize(("rate", "hint"), [("5", "(for 5% give 0.05)"), ("0.5e1", "(for 5% give 0.05)"), ("150", None), ("-1", None)])
def test_a_rate_given_as_a_percentage_on_the_command_line_names_its_fraction(capsys, tmp_path, rate, hint):
    """`--far 5` said only "not a rate in [0, 1)", where the API's Policy names the 0.05 it likely meant."""
    code, _, err = cli(capsys, "threshold", tmp_path, "--far", rate)
    assert_one_line_error(code, err, "is not a rate in [0, 1)")
    assert (hint in err) if hint else "give" not in err, err


@pytest.mark.parametrize("json_out", [False, True])
def test_an_ascii_stdout_of_the_c_locale_takes_any_letter_and_json_stays_json(monkeypatch, tiny_ckpt, part, json_out):
    """LC_ALL=C with PYTHONUTF8=0 gives an ASCII stdout (errors=surrogateescape, for file names' bytes): `inspect --lang
    es` ended in a UnicodeEncodeError traceback (exit 70) at its first accented letter; with --json too."""
    import io
    import sys

    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="surrogateescape")
    monkeypatch.setattr(sys, "stdout", out)
    rc = main(["inspect", str(tiny_ckpt), str(part), "--lang", "es", *(["--json"] if json_out else [])])
    out.flush()
    text = out.buffer.getvalue().decode("ascii")
    assert rc == 0, text
    if json_out:
        assert "la pieza" in _strict(text)["description"].lower()  # one image: its record alone
    else:
        assert "\\xf3" in text or "\\xe1" in text  # an accented letter, escaped
