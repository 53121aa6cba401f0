"""Schema Registry ids: the client's settings, and records read back by our own decoders.

confluent-kafka's in-process ``mock://`` registry stands in for the server here;
``tests/integration/test_schema_registry.py`` runs the same code against a real one.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from streams.broker.config import free_port
from streams.codec import Codec, RegistryError, codec_for
from streams.codec.catalogue import SchemaCatalogue
from streams.codec.registry import RegistryIds, registry_config
from streams.records import GroundTruth, ModelInput, Prediction, Role
from streams.settings import Settings

RECORDS = [
    ModelInput("r1", "churn", 5, {"age": 41.0}, {"plan": "pro"}, {"country": "DE"}),
    Prediction("r1", "churn", "v2", Role.SHADOW, 7, 0.25, latency_ms=1.5),
    GroundTruth("r1", "churn", 9, "yes"),
]


def _mock_url() -> str:
    return f"mock://{uuid.uuid4().hex}"


def test_the_client_gets_url_basic_auth_and_tls_from_settings_and_secret_files(
    tmp_path: Path,
) -> None:
    password, passphrase = tmp_path / "password", tmp_path / "passphrase"
    password.write_text("pw-from-file\n")
    passphrase.write_text("key-pass\n")
    settings = Settings(
        schema_registry_url="https://sr.example:8081",
        schema_registry_username="alice",
        schema_registry_password_file=password,
        schema_registry_cafile=tmp_path / "ca.pem",
        schema_registry_certfile=tmp_path / "client.pem",
        schema_registry_keyfile=tmp_path / "client.key",
        schema_registry_key_password_file=passphrase,
    )
    assert registry_config(settings) == {
        "url": "https://sr.example:8081",
        "timeout": 10,
        "basic.auth.user.info": "alice:pw-from-file",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
        "ssl.key.password": "key-pass",
    }
    assert "pw-from-file" not in repr(settings) and "key-pass" not in repr(settings)


def test_without_a_url_the_catalogue_ids_are_used() -> None:
    codec = codec_for(Settings())
    assert codec.header_of(GroundTruth) == Codec().header_of(GroundTruth)


@pytest.mark.parametrize("fast", [True, False])
def test_records_written_with_registry_ids_are_read_back_as_the_catalogue_schema(
    fast: bool,
) -> None:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    url = _mock_url()
    client = SchemaRegistryClient.new_client({"url": url})
    # Something else registered first: the registry's ids are not the catalogue's.
    unrelated = {"type": "record", "name": "Other", "fields": []}
    client.register_schema("other", Schema(json.dumps(unrelated), "AVRO"))
    writer = Codec(ids=RegistryIds(url, client=client))
    reader = Codec(ids=RegistryIds(url, client=client), fast=fast)  # knows no id yet
    catalogue = SchemaCatalogue.default()
    for record in RECORDS:
        data = writer.encode(record)
        schema_id = int.from_bytes(data[1:5], "big")
        assert schema_id != catalogue.latest(f"dev.shadoweval.{type(record).__name__}").id
        assert reader.decode(data) == record
        assert Codec(fast=False).decode(Codec().encode(record)) == record
    # The fetched schema is the catalogue's own parsed object: no resolution step.
    name, parsed = reader.ids.writer_schema(int.from_bytes(data[1:5], "big")) or ("", {})
    assert parsed is catalogue.latest(name).parsed


def test_an_id_the_registry_never_gave_is_a_codec_error() -> None:
    from streams.codec import CodecError

    codec = codec_for(Settings(schema_registry_url=_mock_url()))
    with pytest.raises(CodecError, match="unknown schema id 4242"):
        codec.decode(b"\x00\x00\x00\x10\x92" + b"\x00" * 8)


def test_an_unreachable_registry_is_one_error_naming_it_without_credentials() -> None:
    url = f"http://alice:hunter2@127.0.0.1:{free_port()}/apis/ccompat/v7"
    settings = Settings(schema_registry_url=url)
    with pytest.raises(RegistryError) as caught:
        codec_for(settings)
    message = str(caught.value)
    assert message.startswith(f"Schema Registry http://127.0.0.1:{url.rsplit(':', 1)[1]}")
    assert "hunter2" not in message and "alice" not in message


def test_after_a_failure_the_hook_path_fails_fast_instead_of_waiting_per_record() -> None:
    url = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"
    codec = codec_for(Settings(schema_registry_url=url), register=False)
    with pytest.raises(RegistryError, match="Connect"):
        codec.encode(RECORDS[2])
    with pytest.raises(RegistryError, match="not retried yet"):
        codec.encode(RECORDS[2])
