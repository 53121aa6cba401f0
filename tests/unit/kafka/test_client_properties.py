"""client.properties files and secret files: parsed, translated, checked, kept out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.kafka.config import ClientConfigError, base_config, file_config, group_config
from streams.settings import Settings, read_properties

JAVA_STYLE = """\
# the file a team keeps for kafka-console-consumer
bootstrap.servers=k1:9093,k2:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username="svc" password="pa\\\\"ss";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/ca.pem
ssl.endpoint.identification.algorithm=
client.rack=eu-west-1a
socket.timeout.ms=20000
"""


def _file(tmp_path: Path, text: str, name: str = "client.properties") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_java_properties_syntax() -> None:
    text = "a=1\n  b : 2\nc 3\n! comment\nd=x\\\n   y\ne\\:f=g\\tz\n"
    assert read_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "xy", "e:f": "g\tz"}


def test_a_java_client_properties_reaches_every_client(tmp_path: Path) -> None:
    settings = Settings(kafka_config_file=_file(tmp_path, JAVA_STYLE))
    assert settings.kafka_bootstrap == "k1:9093,k2:9093"
    assert settings.security_protocol == "SASL_SSL"
    config = group_config(settings, "g")
    assert config["bootstrap.servers"] == "k1:9093,k2:9093"
    assert (config["sasl.username"], config["sasl.password"]) == ("svc", 'pa"ss')
    assert config["ssl.ca.location"] == "/etc/kafka/ca.pem"
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert config["client.rack"] == "eu-west-1a"
    assert config["socket.timeout.ms"] == "20000"
    assert "sasl.jaas.config" not in config and "ssl.truststore.type" not in config


def test_explicit_settings_win_over_the_file(tmp_path: Path) -> None:
    settings = Settings(
        kafka_config_file=_file(tmp_path, JAVA_STYLE),
        kafka_bootstrap="other:9092",
        sasl_username="me",
    )
    config = base_config(settings)
    assert config["bootstrap.servers"] == "other:9092"
    assert config["sasl.username"] == "me"


def test_pem_and_pkcs12_keystores(tmp_path: Path) -> None:
    pem = Settings(
        kafka_config_file=_file(tmp_path, "ssl.keystore.type=PEM\nssl.keystore.location=/k.pem\n")
    )
    assert file_config(pem) == {"ssl.certificate.location": "/k.pem", "ssl.key.location": "/k.pem"}
    p12 = "ssl.keystore.type=PKCS12\nssl.keystore.location=/k.p12\nssl.keystore.password=x\n"
    assert file_config(Settings(kafka_config_file=_file(tmp_path, p12, "p12"))) == {
        "ssl.keystore.location": "/k.p12",
        "ssl.keystore.password": "x",
    }


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "key.serializer=org.apache.kafka.common.serialization.StringSerializer\n",
            "key.serializer",
        ),
        ("client.rack=r1\nno.such.setting=1\n", "no.such.setting"),
        ("ssl.truststore.location=/t.jks\n", "ssl.truststore.location"),
        ("sasl.jaas.config=x.OAuthBearerLoginModule required;\n", "sasl.oauthbearer"),
        ("acks=maybe\n", "acks"),
    ],
)
def test_a_key_librdkafka_cannot_take_is_named_with_the_file(
    tmp_path: Path, text: str, named: str
) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ClientConfigError) as raised:
        base_config(Settings(kafka_config_file=path))
    assert named in str(raised.value) and str(path) in str(raised.value)


def test_a_missing_config_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SHADOW_KAFKA_CONFIG_FILE"):
        Settings(kafka_config_file=tmp_path / "nope.properties")


def test_secrets_from_files(tmp_path: Path) -> None:
    settings = Settings(
        sasl_password_file=_file(tmp_path, "s3cret\n", "pw"),
        ssl_key_password_file=_file(tmp_path, "phrase", "kp"),
        alerts_webhook_url_file=_file(tmp_path, "https://hooks.example/T/B/tok\n", "wh"),
    )
    assert settings.sasl_password is not None and settings.ssl_key_password is not None
    assert settings.sasl_password.get_secret_value() == "s3cret"
    assert base_config(settings)["ssl.key.password"] == "phrase"
    assert settings.alerts_webhook_url is not None
    assert settings.alerts_webhook_url.get_secret_value() == "https://hooks.example/T/B/tok"
    shown = repr(settings) + str(settings.model_dump())
    assert "s3cret" not in shown and "phrase" not in shown and "tok" not in shown


def test_secrets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOW_SASL_PASSWORD_FILE", str(_file(tmp_path, "envpw\n", "pw")))
    monkeypatch.setenv("SHADOW_ALERTS_WEBHOOK_URL", "https://hooks.example/x")
    settings = Settings()
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "envpw"
    assert settings.alerts_webhook_url is not None


def test_a_secret_and_its_file_together_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SHADOW_SASL_PASSWORD_FILE and SHADOW_SASL_PASSWORD"):
        Settings(sasl_password="x", sasl_password_file=_file(tmp_path, "y"))  # type: ignore[arg-type]


def test_an_unreadable_secret_file_names_the_setting_not_the_content(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SHADOW_SSL_KEY_PASSWORD_FILE: cannot read"):
        Settings(ssl_key_password_file=tmp_path / "missing")


def test_secrets_in_the_config_file_stay_out_of_repr(tmp_path: Path) -> None:
    settings = Settings(kafka_config_file=_file(tmp_path, JAVA_STYLE))
    assert "pa" + '\\"ss' not in repr(settings) and "svc" not in repr(settings)
