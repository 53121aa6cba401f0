"""Orchestration of ``shadow-eval demo``: start everything, serve, watch, report, stop.

Everything started is stopped in ``finally`` -- child processes (own process groups,
SIGTERM then SIGKILL), the recorder, the hook and the broker -- also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.broker import BrokerError, LocalBroker
from streams.broker.config import free_port
from streams.demo.collect import Recorder
from streams.demo.experiments import CPU_MARGIN, delivery_experiment_toml, experiments_toml
from streams.demo.models import (
    ETA_DESCRIPTIONS,
    DemoModel,
    load_data,
    save_eta_model,
    train_models,
)
from streams.demo.processes import ChildProcess, shadow_eval_command
from streams.demo.serving import DeliveryApp, LabelFeeder, ServingApp
from streams.demo.traffic import deliveries, requests
from streams.downstream.delivery import EtaModel, train_eta_models
from streams.hook import ShadowPublisher
from streams.join.experiments import load
from streams.replay.run import configure_run
from streams.report import RunResult, render_summary, write_html
from streams.settings import Settings, load_settings
from streams.status import StatusError, group_states
from streams.topics import create_topics

__all__ = ["DemoError", "DemoOptions", "run_demo"]

MODEL = "diagnosis"
ETA_MODEL = "eta"
"""The second served model: delivery-time predictions judged by downstream KPIs."""
PARTITIONS = 3
DIAGNOSIS_BATCH = 20
"""Largest batch of a diagnosis worker (a few tens of ms of the costly candidate's CPU)."""
READY_TIMEOUT_S = 120.0


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why (and where the logs are)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``shadow-eval demo`` is asked to do.

    Examples
    --------
    >>> DemoOptions(requests=500).rate
    40.0
    """

    requests: int = 3000
    """Diagnosis requests served; as many delivery orders are served beside them."""
    rate: float = 40.0
    """Requests per second served (per model)."""
    report: Path = Path("reports/shadow-eval-demo.html")
    traffic: Path = Path("reports/demo-traffic.jsonl")
    max_label_delay_s: float = 3.0
    seed: int = 0
    settle_timeout_s: float = 60.0
    """How long to wait after serving for every pair and label to be joined."""


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise _Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Demo:
    def __init__(self, options: DemoOptions, console: Console, workdir: Path) -> None:
        self.options, self.console, self.workdir = options, console, workdir
        self.broker: LocalBroker | None = None
        self.children: list[ChildProcess] = []
        self.recorder: Recorder | None = None
        self.publisher: ShadowPublisher | None = None
        self.feeder: LabelFeeder | None = None
        self.eta: tuple[EtaModel, EtaModel] | None = None
        self.env = {**os.environ, "SHADOW_PARTITIONS": str(PARTITIONS), "PYTHONWARNINGS": "ignore"}
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/] {message}")

    # -- setup --------------------------------------------------------------------------
    def start_broker(self) -> Settings:
        self.say("starting a local Kafka broker (the first run downloads it from Maven Central)")
        settings = load_settings(partitions=PARTITIONS)
        self.broker = LocalBroker(
            settings, self.workdir / "kafka", die_with_parent=True, progress=self.say
        )
        try:
            bootstrap = self.broker.start(timeout=120)
        except BrokerError as exc:
            raise DemoError(f"cannot start the local Kafka broker:\n{exc}") from None
        settings = load_settings(
            kafka_bootstrap=bootstrap, topic_prefix="demo", partitions=PARTITIONS
        )
        create_topics(settings)
        self.say(f"Kafka {bootstrap} is up; topics demo.* created ({PARTITIONS} partitions)")
        return settings

    def train(self) -> list[DemoModel]:
        models = train_models(load_data())
        for model in models:
            role = "live" if model.version == "v1" else "candidate"
            self.say(f"trained {MODEL} {model.version} ({role}): {model.description}")
        self.eta = train_eta_models(seed=0)
        for version, role in (("v1", "live"), ("v2", "candidate")):
            self.say(f"trained {ETA_MODEL} {version} ({role}): {ETA_DESCRIPTIONS[version]}")
        return models

    def _worker(
        self, settings: Settings, model: str, version: str, path: Path, *options: str
    ) -> None:
        command = shadow_eval_command(
            "worker", "--model-file", str(path), "--version", version, "--name", model,
            "--only-model", model, *options, "--batch-ms", "20", "--status-every", "0",
            "--session-timeout-ms", "10000", "--bootstrap", settings.kafka_bootstrap,
            "--topic-prefix", settings.topic_prefix,
        )  # fmt: skip
        log = self.workdir / "logs" / f"worker-{model}-{version}.log"
        self.children.append(ChildProcess(f"worker {model} {version}", command, log, self.env))

    def start_pipeline(self, settings: Settings, candidates: list[DemoModel]) -> Path:
        assert self.eta is not None
        experiments = self.workdir / "experiments.toml"
        experiments.write_text(
            experiments_toml(MODEL, "v1", [m.version for m in candidates])
            + delivery_experiment_toml(ETA_MODEL, "v1", "v2")
        )
        models = self.workdir / "models"
        for model in candidates:
            features = ",".join(model.features)
            path = model.save(models)
            # A batch is answered one request at a time: small batches keep the costly
            # candidate's calls far inside the call deadline when a backlog builds up.
            options = ("--features", features, "--batch-size", str(DIAGNOSIS_BATCH))
            self._worker(settings, MODEL, model.version, path, *options)
        self._worker(settings, ETA_MODEL, "v2", save_eta_model(self.eta[1], models, "v2"))
        command = shadow_eval_command(
            "join", "--experiments", str(experiments), "--partitions", str(PARTITIONS),
            "--data-dir", str(self.workdir / "join"), "--bootstrap", settings.kafka_bootstrap,
            "--topic-prefix", settings.topic_prefix, "--web-port", str(web := free_port()),
        )  # fmt: skip
        logs = self.workdir / "logs"
        self.children.append(ChildProcess("join", command, logs / "join.log", self.env))
        workers = len(self.children) - 1
        self.say(f"started {workers} shadow workers and the join agent (logs in {logs})")
        self.say(f"live experiment page: [bold]http://127.0.0.1:{web}/[/] (while the demo runs)")
        return experiments

    def check_children(self) -> None:
        for child in self.children:
            if not child.alive:
                raise DemoError(
                    f"{child.name} exited with code {child.proc.returncode}; "
                    f"last lines of {child.log}:\n{child.log_tail()}"
                )

    def wait_ready(self, settings: Settings, candidates: list[DemoModel]) -> None:
        assert self.recorder is not None
        groups = [f"shadow-worker.{MODEL}.{m.version}" for m in candidates]
        groups.append(f"shadow-worker.{ETA_MODEL}.v2")
        deadline = time.monotonic() + READY_TIMEOUT_S
        with self.console.status("waiting for the shadow workers and the join agent"):
            while True:
                self.check_children()
                try:
                    states = list(group_states(settings, groups).values())
                except StatusError:
                    states = [("UNKNOWN", 0)]
                workers_ready = all(s == "STABLE" and members > 0 for s, members in states)
                if workers_ready and self.recorder.latest:
                    break
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"the pipeline was not ready after {READY_TIMEOUT_S:.0f}s "
                        f"(logs in {self.workdir / 'logs'})"
                    )
                time.sleep(0.5)
        self.say("workers and join agent are consuming; serving traffic")

    # -- serving ------------------------------------------------------------------------
    def serve(self, settings: Settings, live: DemoModel, candidates: int) -> None:
        """Serve diagnosis requests and delivery orders side by side, ``rate`` of each a second."""
        assert self.recorder is not None and self.eta is not None
        options, recorder = self.options, self.recorder
        self.publisher = ShadowPublisher(
            settings, model=MODEL, version=live.version, export_metrics=False,
            close_at_exit=False, name="demo", measure_cost=True,
        )  # fmt: skip
        self.feeder = LabelFeeder(
            self.publisher, max_delay_s=options.max_label_delay_s, seed=options.seed
        )
        app = ServingApp(live, self.publisher)
        eta = DeliveryApp(self.eta[0], self.publisher, model_name=ETA_MODEL, version="v1")
        n = options.requests
        expected = n * (candidates + 1)  # every experiment pairs and labels n requests
        columns = (
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            served = progress.add_task("requests served", total=n)
            orders = progress.add_task("delivery orders served", total=n)
            shadow = progress.add_task("shadow predictions", total=expected)
            paired = progress.add_task("predictions paired", total=expected)
            labelled = progress.add_task("labels joined", total=expected)

            def refresh() -> None:
                progress.update(served, completed=app.served)
                progress.update(orders, completed=eta.served)
                progress.update(shadow, completed=recorder.counts["shadow"])
                progress.update(paired, completed=recorder.total("paired"))
                progress.update(labelled, completed=recorder.total("labelled"))

            interval = 1.0 / options.rate
            next_at = time.monotonic()
            stream = zip(
                requests(load_data(), n, seed=options.seed),
                deliveries(n, seed=options.seed),
                strict=True,
            )
            for request, order in stream:
                request_id, _ = app.handle(request)
                self.feeder.schedule(request_id, request.label)
                order_id, _ = eta.handle(order)
                self.feeder.schedule(order_id, order.actual_minutes, model=ETA_MODEL)
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if app.served % 20 == 0:
                    refresh()
                    self.check_children()
            self._settle(refresh, expected)
            refresh()

    def _settle(self, refresh: Callable[[], None], expected: int) -> None:
        assert self.recorder is not None and self.publisher is not None
        deadline = time.monotonic() + self.options.settle_timeout_s
        while time.monotonic() < deadline:
            refresh()
            self.check_children()
            done = (
                self.recorder.total("paired") >= expected
                and self.recorder.total("labelled") >= expected
            )
            if done:
                return
            time.sleep(0.25)
        self.say("[yellow]not everything was joined in time; reporting what was[/]")

    # -- teardown -----------------------------------------------------------------------
    def stop(self) -> None:
        if self.feeder is not None:
            self.feeder.close()
        if self.publisher is not None:
            self.publisher.close(timeout=5.0)
        for child in reversed(self.children):
            child.stop(timeout=10.0)
        if self.recorder is not None:
            self.recorder.close()
        if self.broker is not None:
            self.broker.stop()

    def result(self, experiments: Path) -> RunResult:
        assert self.recorder is not None
        run = configure_run(RunResult("shadow-eval demo"), load(experiments))
        for snapshot in self.recorder.snapshots:
            run.add_snapshot(snapshot)
        run.alerts = list(self.recorder.alerts)
        run.verdicts = list(self.recorder.verdicts)
        run.add_latencies(self.recorder.predictions)
        run.notes = {
            "requests": f"{self.options.requests} diagnosis requests and as many delivery orders",
            "duration": f"{time.monotonic() - self.started:.0f} s",
            "live model": "diagnosis v1 logistic regression on 2 features (breast-cancer dataset)",
            "candidates": "diagnosis v2 gradient boosting on 30 features; diagnosis v3 logistic "
            "regression on 2 texture features; diagnosis v4 ensemble (30-tree forest, boosting, "
            "logistic) on 30 features, the most accurate and the costliest",
            "cost": "CPU per prediction: live's timed by the hook in the app, each candidate's "
            f"in its worker, both one request per call; guardrail cpu_ms at most {CPU_MARGIN:+.0%}",
            "delivery model": f"eta v1 (live) {ETA_DESCRIPTIONS['v1']}; eta v2 (candidate) "
            f"{ETA_DESCRIPTIONS['v2']}; judged by the planner's promised slots "
            "(decision) and late deliveries, idle minutes (KPIs)",
            "experiments file": str(experiments),
            "traffic log": str(self.options.traffic),
        }
        return run

    def run(self) -> RunResult:
        settings = self.start_broker()
        models = self.train()
        live, candidates = models[0], models[1:]
        experiments = self.start_pipeline(settings, candidates)
        self.recorder = Recorder(settings, self.options.traffic, input_models={ETA_MODEL})
        self.wait_ready(settings, candidates)
        self.serve(settings, live, len(candidates))
        self.feeder_wait()
        # One more snapshot interval so the final counts and verdicts are published.
        time.sleep(2.5)
        saved = self.options.traffic.parent / "demo-experiments.toml"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(experiments.read_text())
        return self.result(saved)

    def feeder_wait(self) -> None:
        if self.feeder is not None and self.publisher is not None:
            self.feeder.close()
            self.publisher.flush(10.0)


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; the exit code (0 done, 1 failed, 130 interrupted)."""
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="shadow-eval-demo-") as tmp:
        demo = _Demo(options, console, Path(tmp))
        run: RunResult | None = None
        code = 0
        try:
            with _sigterm_as_interrupt():
                run = demo.run()
        except (KeyboardInterrupt, _Interrupted):
            console.print("[yellow]interrupted; stopping everything the demo started[/]")
            code = 130
        except DemoError as exc:
            console.print(f"[red]demo failed:[/] {exc}")
            code = 1
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                demo.stop()
            finally:
                signal.signal(signal.SIGINT, previous)
            demo.say("stopped the workers, the join agent and the broker")
        if run is None:
            return code
        render_summary(run, console)
        write_html(run, options.report)
        experiments = run.notes["experiments file"]
        console.print(f"HTML report: [bold]{options.report}[/]")
        console.print(f"traffic log: {options.traffic}; backtest it offline with")
        console.print(
            f"  shadow-eval replay {options.traffic} --experiments {experiments} "
            "--report reports/replay.html",
            soft_wrap=True,
        )
        return 0
