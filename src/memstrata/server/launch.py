"""Run a REST server in a child process on a loopback port (used by `bench serve` and the tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from ..errors import ConfigError
from .settings import is_loopback


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def server_process(
    *,
    db: str | Path,
    keys_db: str | Path | None = None,
    workers: int = 1,
    host: str = "127.0.0.1",
    port: int | None = None,
    max_body_bytes: int | None = None,
    log_path: str | Path | None = None,
    startup_timeout: float = 90.0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """Start `python -m memstrata.server.serve` and wait until it answers /v1/health; stop it afterwards."""
    if not is_loopback(host):
        raise ConfigError(f"server_process only runs on loopback, not {host}", field="host")
    port = port or free_port(host)
    log_path = Path(log_path) if log_path else Path(str(db) + f".server-{port}.log")
    cmd = [sys.executable, "-m", "memstrata.server.serve", "--host", host, "--port", str(port),
           "--workers", str(workers), "--db", str(db), "--log-level", "warning"]
    if keys_db:
        cmd += ["--keys-db", str(keys_db)]
    if max_body_bytes:
        cmd += ["--max-body-bytes", str(max_body_bytes)]
    env = {**os.environ, **(extra_env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://{host}:{port}"
    server = RunningServer(url=url, process=proc, log_path=log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.log()[-3000:]}")
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {startup_timeout:.0f}s:\n{server.log()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the server (uvicorn stops its workers), then SIGKILL its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this function's Popen created (workers included)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=5)
