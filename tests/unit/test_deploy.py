"""deploy/ and docker-compose.yml parse, and call only `shadow-eval` commands that exist.

Every ``shadow-eval ...`` command line in compose services and Kubernetes containers is
parsed by the real click command (``streams.cli.main``), so a renamed subcommand or option
breaks this test rather than a deployment.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from streams.cli import SUBCOMMANDS, main
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"
IMAGE = "shadow-eval"
"""The image name our compose services and (pre-kustomize) Kubernetes containers use."""

YAML_FILES = sorted([COMPOSE, *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])
JSON_FILES = sorted(DEPLOY.rglob("*.json"))


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


@dataclass(frozen=True)
class Invocation:
    where: str
    image: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {' '.join(self.argv)}"


def _compose_invocations() -> Iterator[Invocation]:
    for name, service in _documents(COMPOSE)[0]["services"].items():
        argv = _argv(service.get("entrypoint")) + _argv(service.get("command"))
        yield Invocation(f"compose:{name}", str(service.get("image", "")), tuple(argv))


def _containers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _k8s_invocations() -> Iterator[Invocation]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _documents(path):
            for container in _containers(doc):
                argv = _argv(container.get("command")) + _argv(container.get("args"))
                where = f"k8s:{path.name}:{container['name']}"
                yield Invocation(where, str(container.get("image", "")), tuple(argv))


def _ours(invocation: Invocation) -> bool:
    return invocation.image.split(":")[0] == IMAGE


INVOCATIONS = [i for i in [*_compose_invocations(), *_k8s_invocations()] if _ours(i)]


def _parse(argv: tuple[str, ...]) -> list[str]:
    """Parse ``argv`` (after ``shadow-eval``) with the real CLI; returns the command path.

    Raises ``click.UsageError`` (unknown subcommand, option or bad value) like the CLI would.
    """
    path: list[str] = []
    ctx = main.make_context("shadow-eval", list(argv), resilient_parsing=False)
    command: click.Command = main
    with ctx:
        while isinstance(command, click.Group):
            # click >= 8.2 keeps the subcommand in _protected_args (protected_args warns)
            protected = getattr(ctx, "_protected_args", None)
            if protected is None:  # click 8.1
                protected = ctx.protected_args
            rest = [*protected, *ctx.args]
            if not rest:
                raise click.UsageError(f"{' '.join(['shadow-eval', *path])} needs a subcommand")
            name, *args = rest
            sub = command.get_command(ctx, name)
            if sub is None:
                known = ", ".join(command.list_commands(ctx))
                raise click.UsageError(
                    f"`{' '.join(['shadow-eval', *path, name])}` does not exist (known: {known})"
                )
            path.append(name)
            command = sub
            ctx = sub.make_context(name, args, parent=ctx)
    return path


# -- every file parses ----------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path: Path) -> None:
    assert _documents(path), f"{path} has no YAML document"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_json_parses(path: Path) -> None:
    assert json.loads(path.read_text())


def test_the_files_we_expect_exist() -> None:
    for name in ("Dockerfile", "prometheus.yml", "experiments.toml", "k8s/kustomization.yaml"):
        assert (DEPLOY / name).is_file(), name
    assert JSON_FILES, "no Grafana dashboard JSON under deploy/"


# -- shadow-eval command lines -----------------------------------------------------------


def test_every_service_of_our_image_runs_shadow_eval() -> None:
    assert len(INVOCATIONS) >= 8
    for invocation in INVOCATIONS:
        assert invocation.argv[:1] == ("shadow-eval",), str(invocation)


def test_the_image_entrypoint_is_shadow_eval() -> None:
    text = (DEPLOY / "Dockerfile").read_text()

    assert re.search(r'^ENTRYPOINT \["shadow-eval"\]$', text, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)


@pytest.mark.parametrize("invocation", INVOCATIONS, ids=str)
def test_command_exists_in_the_cli(invocation: Invocation) -> None:
    """Fails until the subcommand is registered in ``streams.cli.SUBCOMMANDS`` (intended)."""
    problem = None
    try:
        path = _parse(invocation.argv[1:])
    except click.UsageError as exc:
        problem = exc.format_message()
    if problem is not None:
        pytest.fail(f"{invocation}\n  -> {problem}", pytrace=False)
    assert path[0] in SUBCOMMANDS


def test_the_parser_rejects_what_the_cli_rejects() -> None:
    assert _parse(("topics", "create")) == ["topics", "create"]
    assert _parse(("alerts", "tail", "--follow", "--json")) == ["alerts", "tail"]
    for bad in (("topics", "destroy"), ("no-such-command",), ("topics",), ("alerts", "tail", "-x")):
        with pytest.raises(click.UsageError):
            _parse(bad)


# -- settings ---------------------------------------------------------------------------


def _environments() -> Iterator[tuple[str, dict[str, Any]]]:
    compose = _documents(COMPOSE)[0]
    for name, service in compose["services"].items():
        yield f"compose:{name}", dict(service.get("environment") or {})
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _documents(path):
            if doc.get("kind") == "ConfigMap" and path.name == "config.yaml":
                yield f"k8s:{path.name}", dict(doc["data"])
            for container in _containers(doc):
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                yield f"k8s:{path.name}:{container['name']}", env


def test_every_shadow_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    seen = 0
    for where, env in _environments():
        for name in env:
            if name.startswith("SHADOW_"):
                seen += 1
                assert name.removeprefix("SHADOW_").lower() in fields, f"{where}: {name}"
    assert seen


def test_compose_settings_are_valid() -> None:
    env = _documents(COMPOSE)[0]["services"]["worker"]["environment"]
    values = {k.removeprefix("SHADOW_").lower(): v for k, v in env.items()}

    settings = Settings(**values)

    assert settings.kafka_bootstrap == "kafka:9092"


# -- compose specifics ------------------------------------------------------------------


def test_compose_kafka_is_apache_kafka_4_in_kraft_mode() -> None:
    kafka = _documents(COMPOSE)[0]["services"]["kafka"]
    env = kafka["environment"]

    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_compose_mounts_exist() -> None:
    for name, service in _documents(COMPOSE)[0]["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"compose:{name} mounts missing {source}"


def _metrics_port(argv: tuple[str, ...]) -> int:
    return int(argv[argv.index("--metrics-port") + 1])


def test_prometheus_scrapes_the_metrics_ports() -> None:
    services = _documents(COMPOSE)[0]["services"]
    scrape = _documents(DEPLOY / "prometheus.yml")[0]["scrape_configs"]
    targets = {
        (name, sd["port"]) for job in scrape for sd in job["dns_sd_configs"] for name in sd["names"]
    }
    for service in ("worker", "join"):
        argv = tuple(_argv(services[service]["command"]))
        assert (service, _metrics_port(argv)) in targets
    assert "monitoring" in services["prometheus"]["profiles"]
    assert "monitoring" in services["grafana"]["profiles"]


def test_grafana_dashboard_queries_our_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "shadow-eval.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]

    assert exprs and all(re.search(r"\bshadow_(worker|join)_\w+", e) for e in exprs)
    providers = _documents(DEPLOY / "grafana" / "provisioning" / "dashboards" / "shadow-eval.yml")
    assert providers[0]["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


# -- Kubernetes specifics ---------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _documents(K8S / "kustomization.yaml")[0]
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == manifests


def test_worker_and_join_are_deployments_with_replicas() -> None:
    kinds = {}
    for path in K8S.glob("*-deployment.yaml"):
        (doc,) = _documents(path)
        kinds[doc["metadata"]["labels"]["app.kubernetes.io/component"]] = doc
    assert set(kinds) == {"worker", "join"}
    for doc in kinds.values():
        assert doc["kind"] == "Deployment" and doc["spec"]["replicas"] >= 1
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "partition" in (K8S / "join-deployment.yaml").read_text()


def test_metrics_services_select_pods_and_ports() -> None:
    services = _documents(K8S / "metrics-service.yaml")
    pods = {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc["spec"]["template"]
        for path in K8S.glob("*-deployment.yaml")
        for doc in _documents(path)
    }
    for service in services:
        component = service["spec"]["selector"]["app.kubernetes.io/component"]
        (container,) = pods[component]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert service["spec"]["ports"][0]["port"] == ports["metrics"]
        assert _metrics_port(tuple(container["args"])) == ports["metrics"]


def test_experiments_configmap_is_the_example_file_and_valid() -> None:
    (configmap,) = _documents(K8S / "experiments-configmap.yaml")
    text = configmap["data"]["experiments.toml"]

    assert text == (DEPLOY / "experiments.toml").read_text()
    experiments = tomllib.loads(text)["experiments"]
    assert len(experiments) >= 2
    for table in experiments:
        for key in ("name", "model", "live_version", "candidate", "task", "primary_metric"):
            assert key in table, f"{table.get('name')}: {key}"

    from streams.join.experiments import load

    assert len(load(K8S.parent / "experiments.toml").experiments) == len(experiments)


def test_join_mounts_the_experiments_where_its_command_reads_them() -> None:
    (doc,) = _documents(K8S / "join-deployment.yaml")
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    path = Path(container["args"][container["args"].index("--experiments") + 1])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}

    assert str(path.parent) == mounts["experiments"]
    assert volumes["experiments"]["configMap"]["name"] == "shadow-eval-experiments"


def test_the_image_compiles_the_c_readers_in_its_build_stage() -> None:
    """The wheel built in the image carries the C readers: the build stage has a compiler
    and the build hook, and the context leaves out any module compiled on the host."""
    build_stage = (DEPLOY / "Dockerfile").read_text().split("\nFROM ")[1]
    assert re.search(r"apt-get install .*\bgcc\b", build_stage)
    assert re.search(r"^COPY .*\bhatch_build\.py\b", build_stage, re.MULTILINE)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!hatch_build.py" in ignore and "**/*.so" in ignore
