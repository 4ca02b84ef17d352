"""The example station configs, broker config and systemd unit (the repository's configs/), wherever inspector is
installed: a clone or sdist has them beside the packages, and the wheel installs them under
<prefix>/share/inspector-edge/configs (pyproject's data-files), where a user who installed it alone had none."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from model.errors import InspectorError

DISTRIBUTION = "inspector-edge"
SHARE = Path("share") / DISTRIBUTION / "configs"
# name -> (file, what it is); the station configs first, one per source type
EXAMPLES = {
    "camera": ("station-camera.yaml", "station config: a USB/GigE camera, triggered over MQTT"),
    "stream": ("station-stream.yaml", "station config: an RTSP/HTTP stream camera, its password from a variable"),
    "video": ("station-video.yaml", "station config: a video file, its frames as parts (two a second; to try a model)"),
    "folder": ("station-folder.yaml", "station config: a folder watched for new image files"),
    "mqtt": ("station-mqtt.yaml", "station config: parts' images sent over MQTT, no camera"),
    "unit": ("inspector.service", "systemd unit: one station per instance, inspector@NAME reads /etc/inspector/NAME.yaml"),
    "broker": ("mosquitto.conf", "Mosquitto for a line: persistent sessions, passwords, TLS"),
    "acl": ("mosquitto.acl", "Mosquitto ACL: each station's user kept to its own topics"),
}


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parents[1]
    found = [here / "configs", Path(sys.prefix) / SHARE]  # a clone or sdist; a venv's or the system's prefix
    try:  # --user and other prefixes, by the wheel's own record of where it put them
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution(DISTRIBUTION)
        files = [f for f in dist.files or () if f.name == EXAMPLES["camera"][0] and SHARE.as_posix() in f.as_posix()]
        found += [Path(dist.locate_file(f)).resolve().parent for f in files]
    except (ImportError, PackageNotFoundError):
        pass
    return [*found, here / SHARE]  # pip --target puts share/ beside the packages (and records it elsewhere)


def examples_dir() -> Path:
    """The folder holding the examples, or InspectorError where this copy of inspector has none."""
    looked = list(dict.fromkeys(_candidates()))
    for folder in looked:
        if all((folder / file).is_file() for file, _ in EXAMPLES.values()):
            return folder
    raise InspectorError("the example configs are not installed with this copy of inspector (looked in "
                         f"{', '.join(map(str, looked))}); reinstall it from its wheel or sdist, "
                         "or take them from the repository's configs/ folder")


def example(name: str) -> Path:
    """The example called `name` (a key of EXAMPLES, or its file's name)."""
    by_file = {file: key for key, (file, _) in EXAMPLES.items()}
    key = name if name in EXAMPLES else by_file.get(name)
    if key is None:
        like = difflib.get_close_matches(name, [*EXAMPLES, *by_file], 1)
        hint = f"did you mean {like[0]}? " if like else ""
        raise InspectorError(f"example {name!r}: there is no such example; {hint}give one of {', '.join(EXAMPLES)} "
                             "(`inspector config example` lists them)")
    return examples_dir() / EXAMPLES[key][0]
