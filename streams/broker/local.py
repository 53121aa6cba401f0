"""Start, stop and inspect a single-node Kafka 4.x (KRaft) JVM on loopback."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from streams.broker import process
from streams.broker.certs import write_private
from streams.broker.config import (
    HOST,
    LOG4J2_CONFIG,
    free_port,
    port_in_use,
    random_cluster_id,
    render_server_properties,
)
from streams.broker.errors import BrokerError, tail
from streams.broker.probe import answers
from streams.broker.provision import KafkaRuntime, provision_kafka
from streams.broker.secure import ADMIN, SecureFiles, secure_server_properties
from streams.settings import Settings, load_settings

__all__ = ["BrokerStatus", "LocalBroker"]

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """What ``LocalBroker.status()`` found in a data directory."""

    running: bool
    data_dir: Path
    pid: int | None
    bootstrap: str | None
    version: str | None
    log: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings)."""
        out = asdict(self)
        out["data_dir"], out["log"] = str(self.data_dir), str(self.log)
        return out


class LocalBroker:
    """A Kafka 4.x broker+controller JVM, provisioned from Maven Central on first use.

    Its files live in ``data_dir``: ``server.properties``, ``broker.log``, ``broker.pid``,
    ``bootstrap`` (``127.0.0.1:PORT`` while running) and the KRaft log directory.
    A second ``LocalBroker`` on the same ``data_dir`` (or ``shadow-eval kafka status``)
    sees and controls the same process.

    Parameters
    ----------
    settings
        A ``Settings`` (its ``cache_dir`` holds the jars) or the cache directory itself;
        ``Settings()`` from the environment when ``None``.
    data_dir
        Broker state; ``<cache_dir>/broker`` by default.
    port, controller_port
        Loopback ports; the ports of the previous run in ``data_dir``, else free ones.
    properties
        Extra ``server.properties`` entries, winning over the template.
    die_with_parent
        Terminate the broker when this Python process dies (tests, foreground mode).
    secure
        Listen on ``SASL_SSL`` (SCRAM-SHA-512, port ``port``) and mutual-TLS ``SSL``
        (``ssl_port``) instead of ``PLAINTEXT``, with ACLs (see :mod:`streams.broker.secure`);
        the CA, certificates, users and client.properties live in ``<data_dir>/secrets``.
    progress
        Called with one-line messages before slow steps.
    cluster_id
        The KRaft cluster id formatted into new storage (random by default); the nodes of
        a :class:`~streams.broker.cluster.LocalCluster` share one.

    Examples
    --------
    >>> with LocalBroker(data_dir=tmp / "kafka") as broker:  # doctest: +SKIP
    ...     broker.bootstrap
    '127.0.0.1:40123'
    """

    def __init__(
        self,
        settings: Settings | Path | str | None = None,
        data_dir: Path | str | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        properties: Mapping[str, str] | None = None,
        java: str = "java",
        mvn: str = "mvn",
        die_with_parent: bool = False,
        progress: Progress | None = None,
        secure: bool | None = None,
        ssl_port: int | None = None,
        cluster_id: str | None = None,
    ) -> None:
        if settings is None:
            settings = load_settings()
        self.cache_dir = settings.cache_dir if isinstance(settings, Settings) else Path(settings)
        self.data_dir = Path(data_dir) if data_dir is not None else self.cache_dir / "broker"
        state = self._read_state()
        self.port: int | None = port or state.get("port")
        self.controller_port: int | None = controller_port or state.get("controller_port")
        self.secure: bool = bool(state.get("secure", False)) if secure is None else secure
        self.ssl_port: int | None = ssl_port or state.get("ssl_port")
        self.properties = dict(properties or {})
        self.java, self.mvn = java, mvn
        self.die_with_parent = die_with_parent
        self._progress = progress
        self._cluster_id = cluster_id
        self._proc: subprocess.Popen[bytes] | None = None

    # -- files ----------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        """The broker's stdout/stderr and log4j output."""
        return self.data_dir / "broker.log"

    @property
    def log_dir(self) -> Path:
        """The KRaft log directory (``log.dirs``); ``meta.properties`` lives here."""
        return self.data_dir / "kraft"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of this broker (the port is fixed once started); the
        ``SASL_SSL`` listener of a secured broker."""
        if self.port is None:
            raise BrokerError(f"the broker in {self.data_dir} has no port yet; start it first")
        return f"{HOST}:{self.port}"

    @property
    def ssl_bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of a secured broker's mutual-TLS ``SSL`` listener."""
        if not self.secure or self.ssl_port is None:
            raise BrokerError(f"the broker in {self.data_dir} has no SSL listener")
        return f"{HOST}:{self.ssl_port}"

    @property
    def secrets(self) -> SecureFiles:
        """A secured broker's CA, certificates, users and client.properties."""
        return SecureFiles(self.data_dir / "secrets")

    def client_properties(self) -> dict[str, dict[str, str]]:
        """``{principal: {"sasl_ssl"|"ssl": path}}`` of ready client.properties files
        (a secured broker only; written at start)."""
        return self.secrets.write_client_properties(self.bootstrap, self.ssl_bootstrap)

    def admin_config(self) -> dict[str, Any]:
        """librdkafka settings of the admin principal on the first listener."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.secure:
            admin = self.secrets.principal(ADMIN)
            config.update({
                "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": admin.name, "sasl.password": admin.password,
                "ssl.ca.location": str(self.secrets.ca),
            })  # fmt: skip
        return config

    def _read_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.data_dir / "broker.json").read_text())
        except (OSError, ValueError):
            return {}
        return state

    def _write_state(self, **state: Any) -> None:
        (self.data_dir / "broker.json").write_text(json.dumps(state, indent=2) + "\n")

    def _pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        try:
            pid = int((self.data_dir / "broker.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process.is_alive(pid, str(self.properties_path)) else None

    def _forget(self) -> None:
        for name in ("broker.pid", "bootstrap"):
            (self.data_dir / name).unlink(missing_ok=True)
        if self._proc is not None:
            self._proc.poll()
            self._proc = None

    def _say(self, message: str) -> None:
        logger.debug(message)
        if self._progress is not None:
            self._progress(message)

    # -- public API -----------------------------------------------------------------------
    def status(self) -> BrokerStatus:
        """Whether the broker of ``data_dir`` runs, with its pid, bootstrap and Kafka version."""
        pid = self._pid()
        state = self._read_state()
        return BrokerStatus(
            running=pid is not None,
            data_dir=self.data_dir,
            pid=pid,
            bootstrap=f"{HOST}:{state['port']}" if pid is not None and "port" in state else None,
            version=state.get("version"),
            log=self.log_path,
        )

    def provision(self) -> KafkaRuntime:
        """Resolve the Kafka jars into the cache (once) and return them."""
        return provision_kafka(self.cache_dir, mvn=self.mvn, progress=self._progress)

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker (or find it running) and return its bootstrap address.

        Raises
        ------
        BrokerError
            No Java, Maven missing or failing, a port taken, the broker exiting during
            startup or not answering within ``timeout`` seconds.
        """
        if self.launch():
            self.wait_ready(timeout)
        assert self.port is not None
        return self.bootstrap

    def launch(self) -> bool:
        """Start the JVM without waiting for it to answer; ``False`` if it already runs.

        A node of a cluster answers only once a quorum of controllers runs, so
        :class:`~streams.broker.cluster.LocalCluster` launches every node before waiting.
        """
        running = self.status()
        if running.running and running.bootstrap is not None:
            if self.port is not None and running.bootstrap != self.bootstrap:
                raise BrokerError(
                    f"a broker already runs from {self.data_dir} on {running.bootstrap} "
                    f"(pid {running.pid}); stop it before starting one on port {self.port}"
                )
            self.port = int(running.bootstrap.rpartition(":")[2])
            return False
        java = shutil.which(self.java)
        if java is None:
            raise BrokerError(
                f"Java ({self.java!r}) is not on PATH; the local Kafka broker needs a Java 17+ "
                "runtime (e.g. `apt-get install openjdk-17-jre-headless`)"
            )
        runtime = self.provision()
        self._prepare(java, runtime)
        self._launch(java, runtime)
        return True

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until a launched broker answers, then publish its ``bootstrap`` file."""
        self._wait_ready(timeout)
        if self.secure:
            self.client_properties()
        (self.data_dir / "bootstrap").write_text(self.bootstrap + "\n")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` s; ``False`` if not running."""
        pid = self._pid()
        if pid is None:
            self._forget()
            return False
        process.signal_group(pid, signal.SIGTERM)
        if not process.wait_gone(lambda: self._pid() is not None, timeout):
            logger.warning("broker pid %d ignored SIGTERM for %.0fs; killing it", pid, timeout)
            self.kill()
        self._forget()
        return True

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), as a crash would; ``start()`` brings it back."""
        pid = self._pid()
        if pid is not None:
            process.signal_group(pid, signal.SIGKILL)
            process.wait_gone(lambda: self._pid() is not None, 10.0)
        self._forget()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        pid = self._pid()
        if pid is None:
            raise BrokerError(f"no broker runs from {self.data_dir}")
        process.signal_group(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a broker frozen by ``pause()`` (SIGCONT)."""
        pid = self._pid()
        if pid is not None:
            process.signal_group(pid, signal.SIGCONT)

    def wait(self) -> int | None:
        """Block until a broker started by this object exits; its exit code."""
        return self._proc.wait() if self._proc is not None else None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalBroker(data_dir={str(self.data_dir)!r}, port={self.port})"

    # -- steps of start() -----------------------------------------------------------------
    def _prepare(self, java: str, runtime: KafkaRuntime) -> None:
        """Choose and check ports, write the config files, format storage once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        ports = {"broker": self.port, "controller": self.controller_port}
        overrides = dict(self.properties)
        if self.secure:
            self.ssl_port = ports["ssl"] = self.ssl_port or free_port()
            overrides = {
                **secure_server_properties(
                    self.secrets.ensure(),
                    port=self.port,
                    ssl_port=self.ssl_port,
                    controller_port=self.controller_port,
                ),
                **overrides,
            }
        if len(set(ports.values())) < len(ports):
            raise BrokerError(f"the broker's ports collide: {ports}")
        for role, port in ports.items():
            if port_in_use(port):
                option = {"broker": "--port"}.get(role, f"--{role}-port")
                raise BrokerError(
                    f"port {port} ({role}) is already in use on {HOST}; "
                    f"free it or choose another with {option}"
                )
        self.properties_path.write_text(
            render_server_properties(
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.log_dir,
                overrides=overrides,
            )
        )
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_CONFIG)
        self._write_state(
            port=self.port,
            controller_port=self.controller_port,
            version=runtime.version,
            secure=self.secure,
            ssl_port=self.ssl_port,
        )
        if not (self.log_dir / "meta.properties").exists():
            self._format(java, runtime)

    def _format(self, java: str, runtime: KafkaRuntime) -> None:
        self._say("formatting KRaft storage...")
        command = process.java_command(
            java, runtime.classpath, "kafka.tools.StorageTool",
            "format", "--ignore-formatted", "-t", self._cluster_id or random_cluster_id(),
            "-c", str(self.properties_path),
            *(self.secrets.scram_arguments() if self.secure else ()),
            log4j_config=self.data_dir / "log4j2.properties",
        )  # fmt: skip
        # The SCRAM passwords go through a 0600 argfile, never a visible command line.
        argfile = write_private(self.data_dir / "format.args", process.argfile(command[1:]))
        try:
            done = subprocess.run(
                [command[0], f"@{argfile}"],
                capture_output=True, text=True, check=False, timeout=120,
            )  # fmt: skip
        finally:
            argfile.unlink(missing_ok=True)
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).rstrip().splitlines()[-30:]
            raise BrokerError(
                f"formatting KRaft storage in {self.log_dir} failed (exit code {done.returncode})",
                log_tail="\n".join(lines),
            )

    def _launch(self, java: str, runtime: KafkaRuntime) -> None:
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        command = process.java_command(
            java, runtime.classpath, "kafka.Kafka", str(self.properties_path),
            log4j_config=self.data_dir / "log4j2.properties",
        )  # fmt: skip
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=process.die_with_parent() if self.die_with_parent else None,
            )
        (self.data_dir / "broker.pid").write_text(f"{self._proc.pid}\n")

    def _wait_ready(self, timeout: float) -> None:
        self._say(f"waiting for broker on {self.bootstrap}...")
        deadline = time.monotonic() + timeout
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                self._forget()
                raise BrokerError(
                    f"the Kafka broker exited during startup (exit code {code})",
                    log_tail=tail(self.log_path),
                    log_path=self.log_path,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise BrokerError(
                    f"the Kafka broker did not answer on {self.bootstrap} within {timeout:.0f}s",
                    log_tail=tail(self.log_path),
                    log_path=self.log_path,
                )
            if answers(self.admin_config(), min(remaining, 5.0)):
                return
            time.sleep(0.2)
