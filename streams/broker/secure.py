"""The secured local broker's files: CA, certificates, SCRAM users, client.properties.

A secured :class:`~streams.broker.local.LocalBroker` listens on

- ``SASL_SSL`` (SCRAM-SHA-512; the users are created when the storage is formatted),
- ``SSL`` requiring a client certificate (the principal is the certificate's CN),
- the controller listener over mutual TLS too,

with ``StandardAuthorizer`` ACLs; ``admin`` (and the broker itself) are super users, every
other principal gets only what ACLs grant. The files live in ``<data_dir>/secrets``
(0700, files 0600): ``ca.pem``, ``broker.pem``, ``<principal>.pem`` / ``<principal>.key``
(the key encrypted with a passphrase), and for each principal two ready files for Kafka's
tools and for ``shadow-eval --kafka-config``: ``<principal>-sasl_ssl.properties`` and
``<principal>-ssl.properties``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.broker.certs import CertificateAuthority, write_private

__all__ = [
    "ADMIN",
    "BROKER",
    "ROLES",
    "SCRAM_MECHANISM",
    "SecureFiles",
    "secure_server_properties",
]

ADMIN = "admin"
BROKER = "broker"
ROLES = ("hook", "worker", "join", "alerts")
"""Principals created besides the admin; ACLs decide what each may do."""
SCRAM_MECHANISM = "SCRAM-SHA-512"
LISTENERS = ("sasl_ssl", "ssl")


@dataclass(frozen=True, slots=True)
class Principal:
    """One user's credentials: SCRAM password, client certificate and key passphrase."""

    name: str
    password: str
    passphrase: str


class SecureFiles:
    """Create (once) and locate the secured broker's secrets under ``directory``.

    Examples
    --------
    >>> files = SecureFiles(tmp / "secrets").ensure()  # doctest: +SKIP
    >>> files.properties("worker", "ssl").name  # doctest: +SKIP
    'worker-ssl.properties'
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """The broker's key and certificate chain, one PEM file (``ssl.keystore.type=PEM``)."""
        return self.directory / "broker.pem"

    def certificate(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def properties(self, name: str, listener: str) -> Path:
        """The client.properties of ``name`` for the ``sasl_ssl`` or ``ssl`` listener."""
        return self.directory / f"{name}-{listener}.properties"

    @property
    def _users(self) -> Path:
        return self.directory / "users.json"

    def principals(self) -> list[Principal]:
        """The admin's and every role's credentials (read from ``users.json``)."""
        users = json.loads(self._users.read_text())
        return [Principal(**user) for user in users]

    def principal(self, name: str) -> Principal:
        for principal in self.principals():
            if principal.name == name:
                return principal
        raise KeyError(name)

    def ensure(self) -> SecureFiles:
        """Generate the CA, certificates and passwords unless they exist already."""
        if self._users.is_file():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        ca = CertificateAuthority.create("shadow-eval local CA")
        self.ca.write_bytes(ca.certificate_pem)
        server = ca.issue(BROKER, client=False)
        write_private(self.broker_keystore, server.key + server.certificate)
        principals = [
            Principal(name, secrets.token_hex(16), secrets.token_hex(16))
            for name in (ADMIN, *ROLES)
        ]
        for principal in principals:
            pair = ca.issue(principal.name, client=True, passphrase=principal.passphrase)
            self.certificate(principal.name).write_bytes(pair.certificate)
            write_private(self.key(principal.name), pair.key)
        write_private(self._users, json.dumps([asdict(p) for p in principals], indent=2))
        return self

    def write_client_properties(self, sasl_ssl: str, ssl: str) -> dict[str, dict[str, str]]:
        """Write each principal's client.properties for these bootstrap addresses.

        The files use librdkafka's key names (which shadow-eval, kcat and every
        librdkafka client read); Kafka's Java tools accept the ``ssl.*`` PEM keys as well.
        Returns ``{principal: {listener: path}}``.
        """
        out: dict[str, dict[str, str]] = {}
        for principal in self.principals():
            common = f"ssl.ca.location={self.ca}\n"
            sasl = (
                f"bootstrap.servers={sasl_ssl}\nsecurity.protocol=SASL_SSL\n"
                f"sasl.mechanism={SCRAM_MECHANISM}\nsasl.username={principal.name}\n"
                f"sasl.password={principal.password}\n{common}"
            )
            mtls = (
                f"bootstrap.servers={ssl}\nsecurity.protocol=SSL\n{common}"
                f"ssl.certificate.location={self.certificate(principal.name)}\n"
                f"ssl.key.location={self.key(principal.name)}\n"
                f"ssl.key.password={principal.passphrase}\n"
            )
            paths = {}
            for listener, text in (("sasl_ssl", sasl), ("ssl", mtls)):
                path = self.properties(principal.name, listener)
                write_private(path, f"# shadow-eval local secured broker: {principal.name}\n{text}")
                paths[listener] = str(path)
            out[principal.name] = paths
        return out

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating every SCRAM user (for an argfile,
        never a command line: they hold the passwords)."""
        args: list[str] = []
        for principal in self.principals():
            args += [
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={principal.name},password={principal.password}]",
            ]
        return args


def secure_server_properties(
    files: SecureFiles, *, port: int, ssl_port: int, controller_port: int
) -> dict[str, str]:
    """``server.properties`` entries (winning over the template) of the secured broker."""
    host = "127.0.0.1"
    return {
        "listeners": (
            f"SASL_SSL://{host}:{port},SSL://{host}:{ssl_port},CONTROLLER://{host}:{controller_port}"
        ),
        "advertised.listeners": f"SASL_SSL://{host}:{port},SSL://{host}:{ssl_port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "SSL",
        "controller.listener.names": "CONTROLLER",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca),
        # SSL and CONTROLLER listeners: a client certificate is required (KIP-684: this
        # top-level setting does not apply to SASL_SSL, where the password authenticates).
        "ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN};User:{BROKER}",
        "allow.everyone.if.no.acl.found": "false",
    }
