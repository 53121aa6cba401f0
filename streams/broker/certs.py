"""A throwaway certificate authority for the secured local broker (PEM, ``cryptography``).

Everything here is for loopback tests and trying the secured path by hand: a CA valid for
a week, one server certificate for ``127.0.0.1``/``localhost`` and one client certificate
per principal (``CN=<name>``). Nothing is hand-rolled: keys, signatures and encodings are
``cryptography``'s (imported on first use: the ``secure`` extra).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streams.broker.errors import BrokerError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["CertificateAuthority", "KeyPair", "write_private"]

VALIDITY = datetime.timedelta(days=7)


def write_private(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` readable by its owner only (0600), atomically."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)
    tmp.replace(path)
    return path


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, as PEM bytes (the key possibly encrypted)."""

    certificate: bytes
    key: bytes


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates.

    Examples
    --------
    >>> ca = CertificateAuthority.create("test CA")
    >>> pair = ca.issue("worker", client=True, passphrase="s3cret")
    >>> pair.certificate.startswith(b"-----BEGIN CERTIFICATE-----")
    True
    >>> b"ENCRYPTED" in pair.key
    True
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self._certificate = certificate

    @classmethod
    def create(cls, name: str) -> CertificateAuthority:
        """A new CA named ``CN=name`` with a fresh P-256 key."""
        _require_cryptography()
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True,
            crl_sign=True, encipher_only=False, decipher_only=False,
        )  # fmt: skip
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate (what clients and the broker trust)."""
        from cryptography.hazmat.primitives.serialization import Encoding

        return self._certificate.public_bytes(Encoding.PEM)

    def issue(self, name: str, *, client: bool, passphrase: str | None = None) -> KeyPair:
        """A certificate for ``CN=name``: a client one, or a server one for loopback.

        The key is PKCS#8 PEM, encrypted with ``passphrase`` when one is given (Kafka's
        and librdkafka's PEM readers both take PKCS#8).
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        # A combined broker is also a TLS client of its own controller listener.
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if not client:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if not client:
            names: list[x509.GeneralName] = [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        return KeyPair(
            certificate=certificate.public_bytes(serialization.Encoding.PEM),
            key=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            ),
        )


def _require_cryptography() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:
        raise BrokerError(
            "the secured local broker needs the `cryptography` package for its throwaway "
            "certificates: pip install 'shadow-eval[secure]'"
        ) from exc
