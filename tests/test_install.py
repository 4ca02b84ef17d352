"""Installing the project as a user outside this repo does (its wheel and sdist, built without the network), and the
`inspector bench` commands' numbers and errors."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.cli import assert_one_line_error, cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("inspector", "model", "exporters", "reports")


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an sdist): its file list is what these tests compare with")
    return sorted(p for p in out.decode().split("\0") if p and (ROOT / p).is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The sdist and wheel of a copy of the tracked files, built as `python -m build --no-isolation` builds them."""
    tmp = tmp_path_factory.mktemp("pkg")
    src, dist = tmp / "src", tmp / "dist"
    for rel in _tracked():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    names = []
    for hook in ("build_sdist", "build_wheel"):  # one process each, as a build frontend calls them
        code = f"import sys; from setuptools import build_meta as b; print('built:', b.{hook}(sys.argv[1]))"
        done = subprocess.run([sys.executable, "-c", code, str(dist)], cwd=src, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        names.append(done.stdout.rsplit("built: ", 1)[1].strip())
    sdist_name, wheel_name = names
    return {"src": src, "sdist": dist / sdist_name, "wheel": dist / wheel_name}


def test_sdist_holds_every_tracked_file(built):
    """exporters/gpu_check.sh (the README's script for a GPU machine, run by a test) was left out of the sdist, whose
    MANIFEST.in says `make test` runs from it as in a clone: that test failed there."""
    with tarfile.open(built["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [p for p in _tracked() if p not in names and p != ".gitignore"]
    assert missing == []


def test_wheel_holds_the_packages_and_their_data_and_nothing_else(built):
    with zipfile.ZipFile(built["wheel"]) as whl:
        names = set(whl.namelist())
        meta = email.message_from_bytes(whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        entry_points = whl.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    wanted = {p for p in _tracked() if p.split("/")[0] in PACKAGES and not p.endswith(".sh")}
    assert wanted - names == set()  # every module, template, stylesheet and catalog
    from inspector.version import __version__

    # the example configs (`inspector config example`), installed under <prefix>/share
    share = f"inspector_edge-{__version__}.data/data/share/inspector-edge/configs/"
    assert {n[len(share):] for n in names if n.startswith(share)} == {p.split("/", 1)[1] for p in _tracked() if p.startswith("configs/")}
    extra = {n for n in names - wanted if ".dist-info/" not in n and not n.startswith(share)}
    assert extra == set()  # no tests, docs, caches or build leftovers
    assert sum(i.file_size for i in zipfile.ZipFile(built["wheel"]).infolist()) < 3_000_000
    assert "inspector = inspector.cli:main" in entry_points
    assert meta["Name"] == "inspector-edge" and meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0" and meta["Requires-Python"] == ">=3.10"
    # PyPI's and pip's view of what it runs on: missing before (no classifiers at all)
    classifiers = meta.get_all("Classifier") or []
    pythons = sorted(c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3."))
    assert pythons and pythons[0] == "3.10", classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the license expression says it (setuptools refuses both)


def test_build_requirements_are_in_this_venv(pyproject):
    """`python -m build --no-isolation` in the project's venv stopped on "Missing dependencies: wheel": setuptools 70.1+
    builds wheels itself, and the venv `make setup` makes has no `wheel`."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement
    from packaging.version import Version

    requires = pyproject["build-system"]["requires"]
    unmet = []
    for text in requires:
        req = Requirement(text)
        try:
            if not req.specifier.contains(Version(version(req.name)), prereleases=True):
                unmet.append(text)
        except PackageNotFoundError:
            unmet.append(text)
    assert unmet == []


def test_the_installed_wheel_runs_from_anywhere(built, tmp_path):
    """Installed from the wheel alone (not this checkout), run from another folder: the CLI starts, a report
    renders in every language from the package's own templates, stylesheet and catalogs, and the example configs
    are there (pip --target puts the wheel's share/ beside the packages)."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", "--target", str(target),
                          str(built["wheel"])], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    code = r"""
import json, sys
from pathlib import Path
import inspector, reports
from inspector.cli import main
from reports.sample import make_records
assert all(Path(m.__file__).is_relative_to(sys.argv[1]) for m in (inspector, reports)), (inspector.__file__, reports.__file__)
out = Path("out")
rec = make_records(1, root=out, image_size=64, images_for="all")[0]
for lang in ("en", "zh", "es"):
    reports.render_inspection(rec, out / lang, ("html",), lang, out)
print(json.dumps(sorted(p.name for p in out.rglob("*.html"))))
from inspector.examples import examples_dir
assert examples_dir().resolve().is_relative_to(sys.argv[1]), examples_dir()  # the wheel's, not this checkout's
assert main(["config", "example", "camera", "--out", "station.yaml"]) == 0 and main(["config", "validate", "station.yaml"]) == 0
sys.exit(main(["--version"]))
"""
    run = tmp_path / "elsewhere"
    run.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code, str(target)], cwd=run, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(json.loads(lines[0])) == 3 and lines[1].startswith("wrote station.yaml") and lines[-1].startswith("inspector ")
    assert (run / "station.yaml").read_bytes() == (ROOT / "configs" / "station-camera.yaml").read_bytes()


# --- inspector bench ---


def test_bench_report_bad_language_is_named_before_any_work(capsys):
    """`--lang xx` was refused as "language 'xx': ..." after 1,000 records were written (11 s at the defaults)."""
    rc, out, err = cli(capsys, "bench", "report", "--lang", "xx", "--n", "1", "--image-size", "32")
    assert_one_line_error(rc, err, "--lang: 'xx': choose one of en, zh, es")
    assert out == ""


def test_bench_report_without_weasyprint_names_the_extra(capsys, monkeypatch):
    """Without the pdf extra it filled the store, then said "... (or use --format html)": bench report has no --format."""
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint -> ImportError
    rc, out, err = cli(capsys, "bench", "report", "--n", "1", "--image-size", "32")
    assert_one_line_error(rc, err, "bench report", "pip install 'inspector-edge[pdf]'")
    assert "--format" not in err and out == ""


@pytest.mark.int8  # where onnxruntime makes no INT8 graph, onnx-int8 is skipped for that reason first
def test_bench_model_without_the_training_data_times_the_rest(capsys, monkeypatch, tiny_ckpt, tiny_data):
    """On an edge box the checkpoint's training data is usually not there: INT8 calibration could not find it, and the
    whole benchmark stopped, float32 and FP16 (which need none) included. Now onnx-int8 is listed as skipped, with why."""
    import exporters.calibration

    gone = "checkpoint X: INT8 calibration needs good images and its training data '/data/x' is not on this machine; pass --calib DIR"

    def no_data(*_):
        from model.errors import InspectorError

        raise InspectorError(gone)

    monkeypatch.setattr(exporters.calibration, "_root", no_data)
    rc, out, err = cli(capsys, "bench", "model", tiny_ckpt, tiny_data, "--batches", "1", "--runs", "2", "--warmup", "1", "--no-rss",
                       "--json")
    assert rc == 0, err
    report = json.loads(out)
    rows = {(r["engine"], r["device"], r["kind"]): r for r in report["engines"]}
    assert rows["onnxruntime", "cpu", "onnx-int8"]["skipped"] == f"not exported: {gone}"
    for kind in ("onnx", "onnx-fp16"):
        assert rows["onnxruntime", "cpu", kind]["batches"]["1"]["median_ms"] > 0
    # the ratios name their baseline: on a GPU machine torch eager runs on CUDA too
    assert report["baseline"] == "torch eager cpu" and report["runs"] == 2 and report["warmup"] == 1


@pytest.mark.parametrize("argv, needle", [
    (["nope", "DATA"], "checkpoint nope: no such directory"),  # after "exporting onnx, ... to a temporary folder ..." before
    (["CKPT", "DATA", "--calib", "nope"], "--calib nope: no such folder"),  # "data nope: no such folder" before
])
def test_bench_model_bad_paths_are_one_line_before_any_work(capsys, tiny_ckpt, tiny_data, argv, needle):
    rc, out, err = cli(capsys, "bench", "model", *[{"CKPT": tiny_ckpt, "DATA": tiny_data}.get(a, a) for a in argv])
    assert_one_line_error(rc, err, needle)
    assert out == ""


class _EchoClient:
    """Stands in for the station's broker and daemon: every input is answered on the result topic at once."""

    def __init__(self, prefix: str) -> None:
        import queue

        from inspector.mqtt import Message, Topics

        self.inbox, self._message, self._result = queue.Queue(), Message, Topics(prefix).result

    def publish(self, topic, payload, qos=0, user=None):
        ident = (user or {}).get("inspection_id") or json.loads(payload)["inspection_id"]
        self.inbox.put(self._message(self._result, json.dumps({"inspection_id": ident}).encode(), 1, 0))

    def stop(self, *_):
        pass


@pytest.mark.parametrize("count, want", [(2, "at most the target"), (1, None)])
def test_bench_serve_send_rate_counts_intervals(count, want):
    """N inputs sent are N - 1 intervals: 2 sent at 10/s read "20/s sent", and 1 sent read 1e9/s."""
    from types import SimpleNamespace

    from inspector.commands.bench_serve import bench_serve

    cfg = SimpleNamespace(mqtt=SimpleNamespace(protocol="5", prefix="audit/echo"))
    out = bench_serve(cfg, rate=10.0, count=count, warmup=1, image=b"png", timeout=5.0, client=_EchoClient("audit/echo"))
    assert out["results"] == count and out["lost"] == 0
    if want is None:
        assert out["send_rate"] is None
    else:  # sends are never early (each waits for its time), so the measured rate cannot exceed the target
        assert 0 < out["send_rate"] <= 10.0


def test_bench_serve_sends_on_time_while_no_result_comes():
    """While no result came in, each wait for the next send time read the inbox for a fixed 0.1 s, so at 50/s the inputs
    went out at about 10/s: the station was measured at a fifth of the asked load. No wait now runs past a send's time."""
    from types import SimpleNamespace

    from inspector.commands.bench_serve import bench_serve

    class Held(_EchoClient):  # answers only once every input is sent: a station slower than the rate
        def __init__(self, prefix, count):
            super().__init__(prefix)
            self.held, self.count, self.waits, self.sending = [], count, [], False
            real_get = self.inbox.get

            def get(timeout=None):
                if self.sending:
                    self.waits.append(timeout)
                return real_get(timeout=timeout)

            self.inbox.get = get

        def publish(self, topic, payload, qos=0, user=None):
            ident = (user or {}).get("inspection_id")
            if "-w" in ident:  # the warm-up is answered at once
                return super().publish(topic, payload, qos, user)
            self.held.append((topic, payload, qos, user))
            self.sending = True  # the timed inputs' waits, between their sends
            if len(self.held) == self.count:
                self.sending = False
                for args in self.held:
                    super().publish(*args)

    rate, count = 1000.0, 4
    client = Held("audit/held", count)
    cfg = SimpleNamespace(mqtt=SimpleNamespace(protocol="5", prefix="audit/held"))
    out = bench_serve(cfg, rate=rate, count=count, warmup=1, image=b"png", timeout=5.0, client=client)
    assert out["results"] == count
    assert client.waits and max(client.waits) <= 1.0 / rate  # was 0.1 each


@pytest.mark.parametrize("argv, needle", [
    (["--runs", "0", "ck", "data"], "inspector bench model: argument --runs: '0': give a whole number of at least 1"),
    (["--json", "nope", "data"], "checkpoint nope: no such directory"),
])
def test_bench_options_before_the_default_benchmarks_arguments(capsys, argv, needle):
    """`inspector bench CKPT DATA` is short for `bench model CKPT DATA`, but an option first (`bench --json CKPT DATA`) was
    refused as "inspector: unrecognized arguments: --json CKPT DATA (see inspector --help)"."""
    rc, out, err = cli(capsys, "bench", *argv)
    assert_one_line_error(rc, err, needle)
