"""Acting on verdicts against real servers: a real MLflow tracking server (SQLite backend,
started by the test), a webhook receiver, the real broker; and the Argo Rollouts
AnalysisTemplate evaluated against the join's /verdicts/ endpoint."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Producer

from streams.actions import ActionRunner, actions_of, current_alias
from streams.broker.config import free_port
from streams.codec import Codec
from streams.join.experiments import ExperimentsFile
from streams.join.recent import RecentReports
from streams.kafka.config import client_config
from streams.records import Alert, Decision, Verdict
from streams.settings import Settings
from streams.web.server import LivePage, serve_page
from tests.integration.helpers import create_topics
from tests.integration.model_servers import REPO, ServerProcess, server_venv
from tests.integration.test_worker import read_records

pytestmark = pytest.mark.integration

CODEC = Codec()
API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(server_venv("mlflow") / "mlflow"), "server", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root", str(root / "artifacts")]  # fmt: skip
    server = ServerProcess(argv, root, url, [f"{url}/health"], root / "mlflow.log")
    server.start(timeout=180)
    yield url
    server.stop()


def register(url: str, name: str, versions: int, alias: str) -> None:
    """A registered model with ``versions`` versions, ``alias`` on version 1."""

    def post(path: str, body: dict[str, Any]) -> None:
        response = httpx.post(f"{url}{API}/{path}", json=body, timeout=30)
        assert response.status_code == 200, response.text

    post("registered-models/create", {"name": name})
    for v in range(1, versions + 1):
        post("model-versions/create", {"name": name, "source": f"s3://models/{name}/{v}"})
    post("registered-models/alias", {"name": name, "alias": alias, "version": "1"})


class Receiver:
    """A webhook endpoint that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        bodies = self.bodies = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def experiments_file(mlflow: str, webhook: str) -> ExperimentsFile:
    return ExperimentsFile.parse(f"""
[[experiments]]
name = "churn-v2"
model = "churn"
live_version = "1"
candidate = "2"
on_promote = [{{mlflow = "mlflow://models/churn@champion", tracking_uri = "{mlflow}", dry_run = false}}]
on_reject = [{{webhook = "{webhook}"}}]

[[experiments]]
name = "fraud-v3"
model = "fraud"
live_version = "1"
candidate = "3"
on_promote = [{{mlflow = "mlflow://models/fraud@champion", tracking_uri = "{mlflow}"}}]
""")  # noqa: E501


def publish(settings: Settings, *verdicts: Verdict) -> None:
    producer = Producer(client_config(settings))
    for verdict in verdicts:
        producer.produce(settings.topics.alerts, CODEC.encode(verdict), verdict.experiment.encode())
    assert producer.flush(30) == 0


def wait_until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


class Running:
    def __init__(self, runner: ActionRunner) -> None:
        self.runner, self.stop = runner, threading.Event()
        self.thread = threading.Thread(target=runner.run, args=(self.stop, 0.2))
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_verdicts_move_the_alias_and_call_the_webhook_once_each(
    kafka_settings: Settings, mlflow_url: str
) -> None:
    create_topics(kafka_settings)
    register(mlflow_url, "churn", 2, "champion")
    register(mlflow_url, "fraud", 3, "champion")
    receiver = Receiver()
    actions = actions_of(experiments_file(mlflow_url, receiver.url).experiments)
    client = httpx.Client(timeout=30)
    alias = lambda name: current_alias(client, mlflow_url, name, "champion")  # noqa: E731
    runners: list[Running] = []
    try:
        # A verdict published before the runner starts is acted on once caught up.
        publish(kafka_settings, Verdict("churn-v2", Decision.PROMOTE, "better", 1))
        runners.append(first := Running(ActionRunner(kafka_settings, actions)))
        wait_until(lambda: alias("churn") == "2")
        publish(
            kafka_settings,
            Verdict("churn-v2", Decision.PROMOTE, "still better", 2),  # re-published: no-op
            Verdict("fraud-v3", Decision.PROMOTE, "better", 3),  # dry run by default
            Verdict("churn-v2", Decision.REJECT, "worse after all", 4),
        )
        wait_until(lambda: len(receiver.bodies) == 1 and len(first.runner.outcomes) == 3)
        first.close()
        assert alias("fraud") == "1"  # the dry run changed nothing
        # Someone moves the alias back by hand; a restarted runner must not redo its work.
        httpx.post(f"{mlflow_url}{API}/registered-models/alias", timeout=30,
                   json={"name": "churn", "alias": "champion", "version": "1"})  # fmt: skip
        runners.append(second := Running(ActionRunner(kafka_settings, actions)))
        publish(kafka_settings, Verdict("churn-v2", Decision.REJECT, "worse", 5))
        time.sleep(3)
        second.close()
        assert alias("churn") == "1" and second.runner.outcomes == []
    finally:
        for running in runners:
            running.close()
        receiver.close()
        client.close()
    assert [(b["experiment"], b["decision"]) for b in receiver.bodies] == [("churn-v2", "REJECT")]
    outcomes = [
        r for r in read_records(kafka_settings, kafka_settings.topics.alerts, want=8, timeout=20)
        if isinstance(r, Alert)
    ]  # fmt: skip
    summary = sorted((a.experiment, a.rule, a.direction) for a in outcomes)
    assert summary == [
        ("churn-v2", "on_promote:mlflow", "done"),
        ("churn-v2", "on_reject:webhook", "done"),
        ("fraud-v3", "on_promote:mlflow", "dry_run"),
    ]
    messages = {a.rule + a.experiment: a.message for a in outcomes}
    assert messages["on_promote:mlflowchurn-v2"] == "set churn@champion from version 1 to 2"
    assert messages["on_promote:mlflowfraud-v3"].startswith(
        "dry run: would set fraud@champion from version 1 to 3"
    )


def test_an_unknown_version_is_a_failed_action_with_the_servers_reason(
    kafka_settings: Settings, mlflow_url: str
) -> None:
    create_topics(kafka_settings)
    register(mlflow_url, "ghost", 1, "champion")
    file = ExperimentsFile.parse(f"""
[[experiments]]
name = "ghost-v7"
model = "ghost"
live_version = "1"
candidate = "7"
on_promote = [{{mlflow = "mlflow://models/ghost@champion", tracking_uri = "{mlflow_url}", dry_run = false}}]
""")  # noqa: E501
    runner = ActionRunner(kafka_settings, actions_of(file.experiments))
    ok, message = runner.execute(runner.actions[0], Verdict("ghost-v7", Decision.PROMOTE, "", 0))
    runner.close()
    assert not ok and "RESOURCE_DOES_NOT_EXIST" in message and "version=7" in message


def _jsonpath(expression: str, document: Any) -> Any:
    """Kubernetes JSONPath as Argo's web provider uses it, for ``{$.a.b}`` paths."""
    match = re.fullmatch(r"\{\$((?:\.[A-Za-z0-9_-]+)+)\}", expression)
    assert match, f"unsupported jsonPath {expression!r}"
    for part in match.group(1).split(".")[1:]:
        document = document[part]
    return document


def _condition(expression: str, result: Any) -> bool:
    match = re.fullmatch(r'result == "([a-z]+)"', expression)
    assert match, f"unsupported condition {expression!r}"
    return bool(result == match.group(1))


@pytest.mark.parametrize(
    ("decision", "succeeds", "fails"),
    [("promote", True, False), ("reject", False, True), ("continue", False, False)],
)
def test_the_argo_analysis_template_reads_the_verdicts_endpoint(
    decision: str, succeeds: bool, fails: bool
) -> None:
    template = yaml.safe_load((REPO / "deploy/argo/analysis-template.yaml").read_text())
    metric = template["spec"]["metrics"][0]
    experiments = ExperimentsFile.from_dict(
        {
            "experiments": [
                {"name": "churn-v2", "model": "churn", "live_version": "v1", "candidate": "v2"}
            ]
        }
    )
    # What join stage 2 keeps per experiment (JudgeStage.latest) and serves on /verdicts/.
    latest = {"churn-v2": {"decision": decision, "reason": "r", "counts": {"paired": 9},
                           "timestamp_ms": 1}}  # fmt: skip
    server = serve_page(LivePage(experiments, RecentReports(), lambda: latest), 0)
    try:
        args = {"experiment": "churn-v2", "join-url": server.url.rstrip("/")}
        web = metric["provider"]["web"]
        url = re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)], web["url"])
        path = re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)], web["jsonPath"])
        answer = httpx.get(url, timeout=10)
    finally:
        server.stop()
    assert answer.status_code == 200
    result = _jsonpath(path, answer.json())
    assert _condition(metric["successCondition"], result) is succeeds
    assert _condition(metric["failureCondition"], result) is fails
