"""A real Schema Registry on loopback, like the local Kafka broker: Apicurio Registry
(in-memory storage, Confluent-compatible API), built from Maven Central once into the
cache and started on a free port.

``deploy/registry-pom.xml`` says which release and why. The runnable jar lands in
``<cache_dir>/schema-registry/app``; ``VERSION`` there holds a digest of the pom, so a
changed pom builds again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from streams.broker.config import HOST, free_port
from streams.broker.errors import BrokerError, tail
from streams.broker.process import die_with_parent, is_alive, signal_group, wait_gone
from streams.broker.provision import Progress, deploy_file, locked, run_maven

__all__ = ["CCOMPAT_PATH", "SchemaRegistryServer", "find_registry", "provision_registry"]

CCOMPAT_PATH = "/apis/ccompat/v7"
"""Where Apicurio serves the Confluent Schema Registry API."""

_JVM = ("-Xms64m", "-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")  # fmt: skip
"""A small heap, and C1 only: the server starts in ~5 s instead of ~20 on two cores."""

_TRUST_STORE_PASSWORD = "public-certificates-only"
"""A trust store holds no secret; Java only insists that it has a password."""


def _registry_dir(cache_dir: Path) -> Path:
    return Path(cache_dir).expanduser() / "schema-registry"


def _digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def find_registry(cache_dir: Path, pom: Path | None = None) -> Path | None:
    """The runnable registry jar built from ``pom`` (the project's by default), or ``None``."""
    pom = pom if pom is not None else deploy_file("registry-pom.xml")
    app = _registry_dir(cache_dir) / "app"
    marker = app / "VERSION"
    jars = sorted(app.glob("*-runner.jar"))
    if not marker.is_file() or marker.read_text().strip() != _digest(pom) or not jars:
        return None
    return jars[0]


def provision_registry(
    cache_dir: Path, *, pom: Path | None = None, mvn: str = "mvn", progress: Progress | None = None
) -> Path:
    """The runnable registry jar, built with Maven first if needed (a few minutes, once).

    Raises
    ------
    BrokerError
        If Maven is missing or fails (the message shows its output's tail).
    """
    pom = pom if pom is not None else deploy_file("registry-pom.xml")
    if (jar := find_registry(cache_dir, pom)) is not None:
        return jar
    home = _registry_dir(cache_dir)
    with locked(home / ".lock"):
        if (jar := find_registry(cache_dir, pom)) is not None:
            return jar  # another process built it while we waited
        if progress is not None:
            progress("building the Apicurio Schema Registry with Maven (first run only)...")
        staging = Path(tempfile.mkdtemp(prefix="build.", dir=home))
        try:
            shutil.copy(pom, staging / "pom.xml")
            run_maven(
                mvn, staging / "pom.xml", staging / "target",
                goals=["package", "-DskipTests"], what="the Schema Registry",
            )  # fmt: skip
            app = home / "app"
            shutil.rmtree(app, ignore_errors=True)
            app.mkdir()
            for built in (staging / "target").glob("*-runner.jar"):
                built.rename(app / built.name)
            (staging / "target" / "lib").rename(app / "lib")
            (app / "VERSION").write_text(_digest(pom) + "\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    jar = find_registry(cache_dir, pom)
    if jar is None:
        raise BrokerError(f"Maven finished but no *-runner.jar is in {home / 'app'}")
    return jar


class SchemaRegistryServer:
    """An Apicurio Registry process on ``127.0.0.1`` with in-memory storage.

    Parameters
    ----------
    cache_dir
        Where the built registry is cached (``Settings.cache_dir``).
    data_dir
        Its working directory and ``registry.log``.
    port
        A free port by default.
    tls
        ``(certificate, key, client CA)`` PEM files: serve HTTPS only, with that
        certificate, to clients presenting a certificate signed by that CA.

    Examples
    --------
    >>> with SchemaRegistryServer(cache, tmp) as server:  # doctest: +SKIP
    ...     Settings(schema_registry_url=server.url)
    """

    def __init__(
        self,
        cache_dir: Path,
        data_dir: Path,
        *,
        port: int | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        java: str = "java",
        mvn: str = "mvn",
        kill_with_parent: bool = True,
    ) -> None:
        self.cache_dir, self.data_dir = Path(cache_dir), Path(data_dir)
        self.port = port or free_port()
        self.tls = tls
        self.java, self.mvn = java, mvn
        self.kill_with_parent = kill_with_parent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL (``SHADOW_SCHEMA_REGISTRY_URL``)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{HOST}:{self.port}{CCOMPAT_PATH}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "registry.log"

    def command(self, jar: Path) -> list[str]:
        """The ``java`` command line that serves the registry on :attr:`port`."""
        http = [f"-Dquarkus.http.host={HOST}", f"-Dquarkus.http.port={self.port}"]
        if self.tls is not None:
            cert, key, _ = self.tls
            http = [
                f"-Dquarkus.http.host={HOST}", f"-Dquarkus.http.ssl-port={self.port}",
                "-Dquarkus.http.insecure-requests=disabled",
                f"-Dquarkus.http.ssl.certificate.files={cert}",
                f"-Dquarkus.http.ssl.certificate.key-files={key}",
                f"-Dquarkus.http.ssl.certificate.trust-store-file={self._trust_store}",
                f"-Dquarkus.http.ssl.certificate.trust-store-password={_TRUST_STORE_PASSWORD}",
            ]  # fmt: skip
        return [self.java, *_JVM, *http, "-jar", str(jar)]

    @property
    def _trust_store(self) -> Path:
        return self.data_dir / "client-ca.p12"

    def _write_trust_store(self, java: str) -> None:
        """The client CA as a PKCS#12 trust store, made by the JDK's keytool: this
        Quarkus reads PEM certificates and keys, but no PEM trust store."""
        assert self.tls is not None
        client_ca = self.tls[2]
        keytool = Path(java).resolve().parent / "keytool"
        self._trust_store.unlink(missing_ok=True)
        done = subprocess.run(
            [str(keytool), "-importcert", "-noprompt", "-alias", "client-ca",
             "-file", str(client_ca), "-keystore", str(self._trust_store),
             "-storetype", "PKCS12", "-storepass", _TRUST_STORE_PASSWORD],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise BrokerError(f"keytool cannot import {client_ca}: {done.stdout.strip()}")

    def start(self, timeout: float = 120.0) -> str:
        """Build if needed, start, and wait until the API answers; returns :attr:`url`.

        Raises
        ------
        BrokerError
            If Java or Maven is missing, the build fails, or the server does not answer
            within ``timeout`` seconds (the message shows its log's tail).
        """
        java = shutil.which(self.java)
        if java is None:
            raise BrokerError(f"Java ({self.java!r}) is not on PATH; the registry needs Java 17+")
        jar = provision_registry(self.cache_dir, mvn=self.mvn)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.tls is not None:
            self._write_trust_store(java)
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(jar),
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent() if self.kill_with_parent else None,
            )
        deadline = time.monotonic() + timeout
        while not self._answers(start):
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the Schema Registry exited with code {self._process.returncode}",
                    log_tail=tail(self.log_path, start=start),
                    log_path=self.log_path,
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(
                    f"the Schema Registry did not answer on {self.url} within {timeout:.0f} s",
                    log_tail=tail(self.log_path, start=start),
                    log_path=self.log_path,
                )
            time.sleep(0.25)
        return self.url

    def _answers(self, log_start: int) -> bool:
        if self.tls is not None:  # a client certificate may be required: read the log
            listening = f"Listening on: {self.url.split('/apis')[0]}".encode()
            return listening in self.log_path.read_bytes()[log_start:]
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        import signal

        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        signal_group(process.pid, signal.SIGTERM)
        if not wait_gone(lambda: process.poll() is None and is_alive(process.pid), timeout):
            signal_group(process.pid, signal.SIGKILL)
        process.wait()

    def __enter__(self) -> SchemaRegistryServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
