"""A private Mosquitto for the demo: its own config and log under the demo folder, a free loopback port.

The same way the MQTT tests start theirs (tests/inspector/conftest.py): nothing is installed or
configured system-wide, and the process is stopped when the demo ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from model.errors import InspectorError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_mosquitto() -> str | None:
    """The mosquitto binary (Debian installs it in /usr/sbin, often not on a user's PATH), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


@dataclass
class Broker:
    binary: str
    port: int
    conf: Path
    log: Path
    proc: subprocess.Popen

    @property
    def command(self) -> str:
        return f"{self.binary} -c {self.conf}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_broker(binary: str, folder: Path, timeout: float = 10.0) -> Broker:
    """Start mosquitto on 127.0.0.1:<free port> with a config written into `folder`; wait until it listens."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf, log = folder / "mosquitto.conf", folder / "mosquitto.log"
    user = "user root\n" if os.geteuid() == 0 else ""  # as root it would switch to user `mosquitto`, who cannot write here
    conf.write_text(f"# written by `inspector demo`\n{user}listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"log_dest file {log}\n", encoding="utf-8")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    broker = Broker(binary, port, conf, log, proc)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise InspectorError(f"mosquitto ({binary}) exited at start ({tail[0] if tail else f'code {proc.returncode}'}); "
                                 "see " + str(log) + ", or run the demo with --no-mqtt")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return broker
        time.sleep(0.05)
    broker.stop()
    raise InspectorError(f"mosquitto ({binary}) did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {log}, or use --no-mqtt")
