"""Real model servers the integration tests start: MLServer (and MLflow) on free loopback
ports, each from its own venv that ``make test-servers`` installs (their pins need not
agree with ours). A missing venv fails the test with the command that installs it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.broker.config import free_port
from streams.broker.process import die_with_parent, signal_group

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0


def server_venv(name: str) -> Path:
    """The ``bin`` folder of ``.venv-<name>``; fails the test when it is not installed."""
    bin_dir = REPO / f".venv-{name}" / "bin"
    if not (bin_dir.parent / ".installed").is_file():
        pytest.fail(f"{bin_dir.parent} is missing: run `make test-servers`", False)
    return bin_dir


class ServerProcess:
    """One server process with its log; ``start`` waits until ``ready_url`` answers 200."""

    def __init__(
        self, argv: list[str], cwd: Path, url: str, ready_urls: list[str], log: Path
    ) -> None:
        self.argv, self.cwd, self.url, self.ready_urls, self.log = argv, cwd, url, ready_urls, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(),
                start_new_session=True,  # its own group: stop() ends its workers too
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        pending = list(self.ready_urls)
        while pending:
            if self.process.poll() is not None:
                pytest.fail(f"{self.argv[0]} exited: {self.tail()}", False)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{self.argv[0]} not ready after {timeout:g} s: {self.tail()}", False)
            try:
                if httpx.get(pending[0], timeout=2.0).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            signal_group(process.pid, signal.SIGKILL)
            process.wait(10)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def write_mlserver_repository(root: Path, models: dict[str, Any], version: str = "v1") -> None:
    """A model repository: one folder per model with ``model.joblib`` and its settings."""
    import joblib

    for name, model in models.items():
        folder = root / name
        folder.mkdir(parents=True)
        joblib.dump(model, folder / "model.joblib")
        settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": version},
        }
        (folder / "model-settings.json").write_text(json.dumps(settings))


def mlserver(root: Path, models: list[str], port: int | None = None) -> ServerProcess:
    """An MLServer (not started) serving the repository at ``root`` on a free port;
    in-process inference (``parallel_workers: 0``): two cores are shared by many."""
    bin_dir = server_venv("mlserver")
    port = port or free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings))
    base = f"http://127.0.0.1:{port}"
    ready = [f"{base}/v2/health/ready", *(f"{base}/v2/models/{m}/ready" for m in models)]
    argv = [str(bin_dir / "mlserver"), "start", str(root)]
    return ServerProcess(argv, root, base, ready, root / "mlserver.log")
