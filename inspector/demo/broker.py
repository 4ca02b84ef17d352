"""A private Mosquitto for the demo: its own config and log under the demo folder, a free loopback port.

The same way the MQTT tests start theirs (tests/inspector/conftest.py): nothing is installed or
configured system-wide, and the process is stopped when the demo ends, or dies.
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


# MQTT 3.1.1 CONNECT (clean session, keepalive 10 s, client id "demo-probe") and the CONNACK that accepts it
_PROBE = bytes([0x10, 22, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 10, 0, 10]) + b"demo-probe"
_CONNACK = bytes([0x20, 2, 0, 0])


def speaks_mqtt(port: int, timeout: float = 1.0) -> bool:
    """Whether an MQTT broker answers on 127.0.0.1:port (a listener that only accepts the connection is not one)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(_PROBE)
            reply = b""
            while len(reply) < len(_CONNACK):
                chunk = s.recv(len(_CONNACK) - len(reply))
                if not chunk:
                    return False
                reply += chunk
            if reply != _CONNACK:
                return False
            s.sendall(bytes([0xE0, 0]))  # DISCONNECT
            return True
    except OSError:
        return False


def start_broker(binary: str, folder: Path, timeout: float = 10.0, tries: int = 3) -> Broker:
    """Start mosquitto on 127.0.0.1:<free port> with a config written into `folder`; wait until it answers MQTT there.

    A port taken between choosing it and mosquitto's bind (another program's listener answered the old connect-only
    check, and the station then waited half an hour on it) is given up for another, `tries` times in all."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: list[int] = []
    for _ in range(tries):
        broker = _start_once(binary, folder, timeout)
        if isinstance(broker, Broker):
            return broker
        taken.append(broker)
    raise InspectorError(f"mosquitto ({binary}) could not listen: ports {', '.join(map(str, taken))} on 127.0.0.1 were taken by"
                         f" other programs as it started; run the demo again, or with --no-mqtt")


def _start_once(binary: str, folder: Path, timeout: float) -> Broker | int:
    """A broker that answers MQTT, or the port it could not bind because another program holds it."""
    port = free_port()
    conf, log = folder / "mosquitto.conf", folder / "mosquitto.log"
    user = "user root\n" if os.geteuid() == 0 else ""  # as root it would switch to user `mosquitto`, who cannot write here
    conf.write_text(f"# written by `inspector demo`\n{user}listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                    f"log_dest file {log}\n", encoding="utf-8")
    start = log.stat().st_size if log.exists() else 0  # mosquitto appends: only this start's lines count
    proc = subprocess.Popen([*_dies_with_parent(), binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    broker = Broker(binary, port, conf, log, proc)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if proc.poll() is not None:
                lines = _log_since(log, start)
                if any("address already in use" in line.lower() for line in lines):
                    return port
                raise InspectorError(f"mosquitto ({binary}) exited at start ({lines[-1] if lines else f'code {proc.returncode}'}); "
                                     "see " + str(log) + ", or run the demo with --no-mqtt")
            if speaks_mqtt(port) and proc.poll() is None:
                return broker
            time.sleep(0.05)
    except BaseException:  # Ctrl-C or SIGTERM while it starts: not left running
        broker.stop()
        raise
    broker.stop()
    raise InspectorError(f"mosquitto ({binary}) did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {log}, or use --no-mqtt")


def _dies_with_parent() -> list[str]:
    """A prefix that has the broker sent SIGTERM when the demo's process dies, however it dies (Linux's parent-death
    signal, set by util-linux's setpriv and kept across its exec of mosquitto): a SIGKILLed demo left its broker
    running, holding its port, for good. Nothing where setpriv is missing (it is on every Debian and Ubuntu)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv and os.uname().sysname == "Linux" else []


def _log_since(log: Path, offset: int) -> list[str]:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return []
