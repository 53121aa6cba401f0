"""The secured local broker's files: CA, certificates, users, client.properties, server config."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from streams.broker.process import argfile
from streams.broker.secure import ADMIN, ROLES, SecureFiles, secure_server_properties


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SecureFiles:
    return SecureFiles(tmp_path_factory.mktemp("s") / "secrets").ensure()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_secrets_are_private(files: SecureFiles) -> None:
    assert _mode(files.directory) == 0o700
    for name in (ADMIN, *ROLES):
        assert _mode(files.key(name)) == 0o600
    assert _mode(files.broker_keystore) == 0o600


def test_certificates_chain_to_the_ca(files: SecureFiles) -> None:
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    for name in (ADMIN, *ROLES):
        cert = x509.load_pem_x509_certificate(files.certificate(name).read_bytes())
        cert.verify_directly_issued_by(ca)
        assert _cn(cert) == name
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    server = x509.load_pem_x509_certificate(files.broker_keystore.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)


def test_client_keys_need_their_passphrase(files: SecureFiles) -> None:
    principal = files.principal("worker")
    key = files.key("worker").read_bytes()
    with pytest.raises(TypeError):  # encrypted: no password given
        serialization.load_pem_private_key(key, None)
    serialization.load_pem_private_key(key, principal.passphrase.encode())


def test_ensure_keeps_existing_secrets(files: SecureFiles) -> None:
    before = files.principal(ADMIN)
    assert SecureFiles(files.directory).ensure().principal(ADMIN) == before


def test_client_properties_name_each_listener(files: SecureFiles) -> None:
    paths = files.write_client_properties("127.0.0.1:1", "127.0.0.1:2")
    assert set(paths) == {ADMIN, *ROLES}
    sasl = Path(paths["join"]["sasl_ssl"]).read_text()
    assert "security.protocol=SASL_SSL" in sasl and "sasl.username=join" in sasl
    assert "bootstrap.servers=127.0.0.1:1" in sasl
    mtls = Path(paths["join"]["ssl"]).read_text()
    assert "security.protocol=SSL" in mtls and f"ssl.key.location={files.key('join')}" in mtls
    assert _mode(Path(paths["join"]["ssl"])) == 0o600


def test_server_properties_require_auth_and_acls(files: SecureFiles) -> None:
    props = secure_server_properties(files, port=1, ssl_port=2, controller_port=3)
    assert "PLAINTEXT" not in props["listener.security.protocol.map"]
    assert props["ssl.client.auth"] == "required"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:broker"


def test_scram_arguments_name_every_user(files: SecureFiles) -> None:
    args = files.scram_arguments()
    assert args.count("--add-scram") == 1 + len(ROLES)
    assert any(f"password={files.principal('hook').password}" in arg for arg in args)


def test_argfile_quotes_every_argument() -> None:
    assert argfile(["a b", 'c"d', "e\\f"]) == '"a b"\n"c\\"d"\n"e\\\\f"\n'
