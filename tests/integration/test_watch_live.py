"""Watching a running pipeline: the live experiment page in a real browser (Debian's
chromium and chromedriver, driven by selenium), and Prometheus (Debian's prometheus)
scraping the worker and the join with deploy/prometheus.yml, every Grafana query
answered and every alerting rule evaluated.

One pipeline serves both tests: a real broker, a ``shadow-eval worker`` and a
``shadow-eval join`` process, and a hook publishing traffic the whole time (so new
snapshots keep coming). The experiment and a segment value carry markup, so the page's
escaping is tested in the browser too. ``make test-deps`` installs the Debian packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from streams.broker.config import free_port
from streams.hook import ShadowPublisher
from streams.kafka.config import client_config
from streams.settings import Settings, load_settings
from streams.synthetic import CandidateSpec, classification_requests
from tests.integration.helpers import create_topics, delete_topics
from tests.integration.join_helpers import REPO, JoinProcess

pytestmark = pytest.mark.integration

HOSTILE_NAME = 'churn <script>alert("name")</script>'
HOSTILE_SEGMENT = "<img src=x onerror=alert('segment')>"
EXPERIMENTS = f"""
[join]
pair_ttl_s = 30
label_ttl_s = 60
expire_every_s = 1
snapshot_every_s = 1

[[experiments]]
name = {json.dumps(HOSTILE_NAME)}
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
primary_metric = "correct"
segments = ["country"]
min_samples = 50
"""
RATE = 150
"""Requests a second the hook publishes while the tests run."""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,2000",
)


@dataclass
class Pipeline:
    settings: Settings
    page: str
    worker_metrics: int
    join_metrics: int
    logs: Path


def _traffic(settings: Settings, stop: threading.Event) -> None:
    """Live predictions, inputs and labels at :data:`RATE` a second until ``stop``."""
    requests = classification_requests(
        10**6, CandidateSpec("v1", 0.9), [CandidateSpec("v2", 0.8)], seed=7
    )
    with ShadowPublisher(
        settings, model="churn", version="v1", export_metrics=False, close_at_exit=False
    ) as hook:
        for i, request in enumerate(requests):
            if stop.is_set():
                break
            live = request.live
            features = {"_live": str(live.value), "_worse": str(request.candidates[0].value)}
            country = HOSTILE_SEGMENT if i % 4 == 0 else ("DE" if i % 2 else "FR")
            hook.publish(
                features,
                live.value,
                request_id=live.request_id,
                probabilities=live.probabilities,
                latency_ms=2.0,
                segments={"country": country},
            )
            hook.label(live.request_id, request.label.value)
            if i % 10 == 9:
                time.sleep(10 / RATE)
        hook.flush(10)


def _bad_records(settings: Settings) -> None:
    """One undecodable record for the worker and one for the join: dead letters."""
    producer = Producer(client_config(settings))
    for topic in (settings.topics.inputs, settings.topics.live_predictions):
        producer.produce(topic, b"not avro", b"bad-1")
    assert producer.flush(30) == 0


def _get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.load(answer)


def _wait_for_page(url: str, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"a process exited; logs in {logs}"
        try:
            if "data-experiment" in _get(url + "live.json")["html"]:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no snapshot on {url} after 90 s; logs in {logs}")


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    logs = tmp_path_factory.mktemp("watch-live")
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    create_topics(settings)
    experiments = logs / "experiments.toml"
    experiments.write_text(EXPERIMENTS)
    web, join_metrics, worker_metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "SHADOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    worker_log = (logs / "worker.log").open("ab")
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "streams.cli", "worker",
            "--model", "tests.integration.candidates:worse", "--version", "v2",
            "--name", "churn", "--only-model", "churn", "--batch-ms", "20",
            "--status-every", "0", "--session-timeout-ms", "10000",
            "--metrics-port", str(worker_metrics), "--topic-prefix", settings.topic_prefix,
        ],
        cwd=REPO, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    join = JoinProcess(
        settings,
        experiments,
        logs / "join.log",
        *("--web-port", str(web), "--metrics-port", str(join_metrics)),
    )
    stop = threading.Event()
    traffic = threading.Thread(target=_traffic, args=(settings, stop), daemon=True)
    traffic.start()
    try:
        page = f"http://127.0.0.1:{web}/"
        _wait_for_page(page, [worker, join.process], logs)
        yield Pipeline(settings, page, worker_metrics, join_metrics, logs)
    finally:
        stop.set()
        traffic.join(30)
        join.stop()
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        worker_log.close()
        delete_topics(settings)


# -- the live page in a real browser --------------------------------------------------------

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


_SECTION = 'document.querySelector("section.experiment[data-experiment]")'
_READ_PAGE = f"""
const section = {_SECTION};
const text = (el) => (el ? el.innerText.trim() : "");
let table = document.getElementById("segments");
do {{ table = table && table.nextElementSibling; }} while (table && table.tagName !== "TABLE");
return {{
  experiment: section.dataset.experiment,
  snapshot: section.dataset.snapshot,
  heading: text(section.querySelector("h2")),
  scripts: document.scripts.length,
  images: document.querySelectorAll("main img").length,
  segments: text(table),
  badge: text(section.querySelector(".badge")),
  sentence: text(section.querySelector(".sentence")),
  polylines: section.querySelectorAll(".charts svg polyline").length,
  text: text(section),
}};
"""


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium / chromedriver missing: `make test-deps` installs them",
)
def test_the_live_page_in_a_real_browser(pipeline: Pipeline, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(pipeline.page)
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        wait.until(lambda d: d.execute_script(f"return {_SECTION} !== null"))
        # The page swaps in each new snapshot every few seconds: read it in one script
        # run, which the page's own script cannot interleave with (no stale elements).
        seen = driver.execute_script(_READ_PAGE)
        # Markup in names is text, not elements: only the page's own script exists.
        assert seen["experiment"] == HOSTILE_NAME
        assert seen["heading"].startswith(HOSTILE_NAME)
        assert seen["scripts"] == 1
        assert seen["images"] == 0
        assert HOSTILE_SEGMENT in seen["segments"]
        assert seen["badge"] in {"PROMOTE", "REJECT", "CONTINUE"}
        assert seen["sentence"]
        assert seen["polylines"] > 0
        assert "anytime-valid 95% interval" in seen["text"]

        # A new snapshot replaces the body without a reload (the marker survives).
        driver.execute_script("window.__notReloaded = 42")
        wait.until(
            lambda d: d.execute_script(f"return {_SECTION}.dataset.snapshot") != seen["snapshot"]
        )
        assert driver.execute_script("return window.__notReloaded") == 42
        status = driver.execute_script('return document.getElementById("status").innerText')
        assert status.startswith("live, checked")

        shot = tmp_path / "live-page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        errors = [e for e in driver.get_log("browser") if e["level"] in {"SEVERE", "ERROR"}]
        assert errors == [], errors
    finally:
        driver.quit()


# -- Prometheus scraping the worker and the join -------------------------------------------

PROMETHEUS = shutil.which("prometheus")
DEPLOY = REPO / "deploy"


def _prometheus_config(pipeline: Pipeline) -> dict[str, Any]:
    """deploy/prometheus.yml with its DNS discovery pointed at the test's ports."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    ports = {"shadow-worker": pipeline.worker_metrics, "shadow-join": pipeline.join_metrics}
    for job in config["scrape_configs"]:
        assert job.pop("dns_sd_configs")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules.yml")]
    return config


def _dashboard_queries() -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        walk(json.loads(path.read_text()))
    return found


def _wait_for_scrapes(api: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until Prometheus has scraped both targets twice."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            answer = _get(
                api + "query?" + urllib.parse.urlencode({"query": "count_over_time(up[1m])"})
            )
            if len(answer["data"]["result"]) == 2 and all(
                int(r["value"][1]) >= 2 for r in answer["data"]["result"]
            ):
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"Prometheus scraped nothing in 30 s: {log.read_text()}")


def _wait_for_alerts(api: str, names: set[str]) -> list[dict[str, Any]]:
    """The rules once every alert of ``names`` fires (each rule evaluated at least once)."""
    deadline = time.monotonic() + 30
    while True:
        rules = [r for g in _get(api + "rules")["data"]["groups"] for r in g["rules"]]
        firing = {r["name"] for r in rules if r["state"] == "firing"}
        if names <= firing or time.monotonic() > deadline:
            assert names <= firing, rules
            return rules
        time.sleep(0.5)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: `make test-deps` installs it")
def test_prometheus_scrapes_and_every_dashboard_query_returns_data(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_prometheus_config(pipeline)))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1/"
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            queries = _dashboard_queries()
            assert len(queries) >= 10
            _wait_for_scrapes(api, server, tmp_path / "prometheus.log")
            _bad_records(pipeline.settings)  # after the first scrapes, so counters increase
            missing = set(queries)
            deadline = time.monotonic() + 60
            while missing and time.monotonic() < deadline:
                assert server.poll() is None, (tmp_path / "prometheus.log").read_text()
                for expr in sorted(missing):
                    try:
                        answer = _get(api + "query?" + urllib.parse.urlencode({"query": expr}))
                    except (urllib.error.URLError, ConnectionError):
                        break  # not up yet
                    assert answer["status"] == "success", (expr, answer)
                    if answer["data"]["result"]:
                        missing.discard(expr)
                time.sleep(1)
            assert not missing, f"dashboard queries without data: {sorted(missing)}"

            targets = _get(api + "targets")["data"]["activeTargets"]
            assert {t["labels"]["job"] for t in targets} == {"shadow-worker", "shadow-join"}
            assert all(t["health"] == "up" for t in targets), targets
            rules = _wait_for_alerts(api, {"ShadowJoinDeadLetters", "ShadowWorkerDeadLetters"})
            assert len(rules) == 9 and all(r["health"] == "ok" for r in rules), rules
        finally:
            server.terminate()
            server.wait(30)
