"""The experiments file (TOML): what the join agent pairs and how it judges each candidate.

Reference::

    [join]                          # optional; every key has a default
    app_id = "shadow-eval-join"     # consumer groups "<app_id>-<prefix>" (stage 1) and "...-judge"
    pair_ttl_s = 600                # wait this long for live and candidate to meet
    label_ttl_s = 86400             # wait this long (from the first record) for the label
    expire_every_s = 5              # how often pending state is scanned for expiry
    snapshot_every_s = 10           # how often metrics snapshots, alerts and verdicts go out
    checkpoint_every_s = 60         # how often stage 2 saves its state (restarts resume there)
    max_skew_s = 300                # event times past now + this (or before now - label_ttl_s)
                                    #   are clamped for the time windows, counted clock_skew
    user_timeout_s = 1              # deadline of one decision / KPI / proxy call; a late one
                                    #   is counted timeouts:<module:function>
    stall_limit_s = 45              # a stage-1 transaction call blocked this long is stuck:
                                    #   the process restarts (streams.kafka.watchdog)
    store = "memory://"             # or "rocksdb://" (pip install shadow-eval[rocksdb]), with its
                                    # memory bounds: "rocksdb://?cache_mb=64&write_buffer_mb=32"

    [[experiments]]
    name = "churn-v2"               # unique; alert keys and snapshots use it
    model = "churn"                 # model name as the hook and workers publish it
    live_version = "v1"
    candidate = "v2"                # or candidates = ["v2", "v3"]: one experiment each,
                                    #   named "<name>/<candidate>"
    task = "binary"                 # regression | binary | multiclass
    positive_class = "1"            # binary only: the class whose probability log loss uses
    classes = ["0", "1"]            # optional: every class a prediction or label may name;
                                    #   others are invalid (unknown_class, streams.join.validity)
    decision = "myapp.policy:decide"  # optional: decide(inputs, prediction) -> outcome
    kpis = ["myapp.policy:costs"]     # optional: kpi(inputs, outcome, label) -> {name: number}
                                    #   (declare each KPI name in [[experiments.metrics]])
    proxy = "myapp.proxy:losses"      # optional: proxy(inputs, live_prediction,
                                    #   candidate_prediction) -> {metric: (live, candidate)},
                                    #   label-free proxies of the metrics named in proxies =
                                    #   [...], for their prediction-powered estimate "ppi"
                                    #   (and, for the primary metric, an "estimated" verdict
                                    #   while labels are partial: estimated_verdict,
                                    #   ppi_look_every in streams.stats.rules)
    # ... plus the statistics keys: primary_metric, guardrails, alpha, min_samples, segments,
    # window, [[experiments.metrics]], [[experiments.rules]] (see streams.stats.rules).

A syntax error names the line and column; a bad value names the experiment and the field.

Downstream outcomes: ``decision`` runs for the live and the candidate prediction of every
pair; their agreement and distribution become the categorical metric ``decision``. Each
KPI function runs on (inputs, outcome, label) for both sides of every labelled pair and
each number it returns becomes a paired metric of that name, judged like any model metric
(it may be the ``primary_metric`` or a guardrail). ``inputs`` is the request's features as
one dict, as the hook published them.
"""

from __future__ import annotations

import importlib
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.callpool import CallPool
from streams.join.store_options import StoreOptions
from streams.stats import ConfigError, ExperimentRules

__all__ = [
    "TASKS",
    "ConfigError",
    "Experiment",
    "ExperimentsFile",
    "JoinSettings",
    "UserFunction",
    "load",
]

TASKS = ("regression", "binary", "multiclass")
_STORES = ("memory://", "rocksdb://")


@dataclass(frozen=True, slots=True)
class JoinSettings:
    """The ``[join]`` table."""

    app_id: str = "shadow-eval-join"
    pair_ttl_s: float = 600.0
    label_ttl_s: float = 86_400.0
    expire_every_s: float = 5.0
    snapshot_every_s: float = 10.0
    checkpoint_every_s: float = 60.0
    max_skew_s: float = 300.0
    user_timeout_s: float = 1.0
    stall_limit_s: float = 45.0
    store: str = "memory://"


@dataclass(frozen=True, slots=True)
class Experiment:
    """One candidate version of one model, compared with the live version."""

    name: str
    model: str
    live_version: str
    candidate: str
    task: str
    rules: ExperimentRules
    positive_class: str | None = None
    table: Mapping[str, Any] | None = None
    """The raw TOML table, for components that read their own keys from it."""
    decision: UserFunction | None = None
    kpis: tuple[UserFunction, ...] = ()
    proxy: UserFunction | None = None
    classes: frozenset[str] | None = None
    """The classes a prediction or label may name (None: any)."""

    @property
    def needs_inputs(self) -> bool:
        """Whether downstream functions need the request's inputs."""
        return self.decision is not None or bool(self.kpis) or self.proxy is not None


def _exception_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (as ``streams.worker.loading.exception_line``;
    the join's core does not import the worker)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


USER_THREADS = 2
"""Threads per user function: calls beyond a hung one still run."""
_POOLS: dict[tuple[str, float], CallPool] = {}
_POOLS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class UserFunction:
    """A function from the user's code, named by its import path ``module:attribute``.

    :meth:`call` runs it under the deadline ``timeout_s`` on a few threads of its own
    (:class:`~streams.callpool.CallPool`, made in the process that calls, so experiments
    stay picklable): a hung user function costs its threads, never the stage.
    """

    path: str
    function: Callable[..., Any]
    timeout_s: float = 1.0

    @classmethod
    def load(cls, path: Any, where: str, timeout_s: float = 1.0) -> UserFunction:
        if not isinstance(path, str) or ":" not in path:
            raise ConfigError(f"{where}: must be 'module:function' (got {path!r})")
        module_name, _, attribute = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"{where}: cannot import {path!r}: {exc}") from None
        except Exception as exc:  # the module's own code raised (SyntaxError included)
            raise ConfigError(
                f"{where}: {path!r}: module {module_name} raised at import, before "
                f"{attribute} could be loaded: {_exception_line(exc)}"
            ) from None
        try:
            function = getattr(module, attribute)
        except AttributeError as exc:
            raise ConfigError(f"{where}: cannot import {path!r}: {exc}") from None
        if not callable(function):
            raise ConfigError(f"{where}: {path!r} is not callable")
        return cls(path, function, timeout_s)

    def call(self, *arguments: tuple[Any, ...]) -> list[Any]:
        """``[function(*a) for a in arguments]`` in one call under the deadline.

        Raises
        ------
        Timeout
            Past the deadline.
        PoolExhausted
            Every thread of this function is stuck in an earlier call.
        Exception
            Whatever the function raised.
        """
        key = (self.path, self.timeout_s)
        pool = _POOLS.get(key)
        if pool is None:
            with _POOLS_LOCK:
                pool = _POOLS.setdefault(
                    key, CallPool(USER_THREADS, self.timeout_s, name=f"shadow-user-{self.path}")
                )
        function = self.function
        return pool.call(lambda: [function(*a) for a in arguments])


@dataclass(frozen=True, slots=True)
class ExperimentsFile:
    """Every experiment, indexed the ways the join needs.

    Examples
    --------
    >>> text = '''
    ... [[experiments]]
    ... name = "churn-v2"
    ... model = "churn"
    ... live_version = "v1"
    ... candidate = "v2"
    ... task = "binary"
    ... '''
    >>> ExperimentsFile.parse(text).experiments[0].candidate
    'v2'
    """

    join: JoinSettings
    experiments: tuple[Experiment, ...]

    def for_model(self, model: str) -> tuple[Experiment, ...]:
        return tuple(e for e in self.experiments if e.model == model)

    @property
    def needs_inputs(self) -> bool:
        return any(e.needs_inputs for e in self.experiments)

    def get(self, name: str) -> Experiment:
        for experiment in self.experiments:
            if experiment.name == name:
                return experiment
        raise KeyError(f"no experiment named {name!r}")

    @classmethod
    def parse(cls, text: str, source: str = "experiments file") -> ExperimentsFile:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cls.from_dict(document, source)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], source: str = "experiments") -> ExperimentsFile:
        join = _join_settings(document.get("join", {}), f"{source}: [join]")
        tables = document.get("experiments")
        if not isinstance(tables, list) or not tables:
            raise ConfigError(f"{source}: needs at least one [[experiments]] table")
        experiments: list[Experiment] = []
        for index, table in enumerate(tables):
            where = f"{source}: experiments[{index}]"
            experiments += _experiments(table, where, join.user_timeout_s)
        names = [e.name for e in experiments]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError(f"{source}: experiment names must be unique: {duplicated}")
        for model in {e.model for e in experiments}:
            lives = {e.live_version for e in experiments if e.model == model}
            if len(lives) > 1:
                raise ConfigError(
                    f"{source}: model {model!r} has several live versions {sorted(lives)}"
                )
        return cls(join, tuple(experiments))


def load(path: str | Path) -> ExperimentsFile:
    """Read and validate an experiments file; :class:`ConfigError` says what and where."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read experiments file {file}: {exc.strerror}") from None
    return ExperimentsFile.parse(text, str(file))


def _require_str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: required non-empty string (got {value!r})")
    return value


_JOIN_PERIODS = (
    "pair_ttl_s",
    "label_ttl_s",
    "expire_every_s",
    "snapshot_every_s",
    "checkpoint_every_s",
    "max_skew_s",
    "user_timeout_s",
    "stall_limit_s",
)
_JOIN_KEYS = {"app_id", "store", *_JOIN_PERIODS}


def _join_settings(table: Any, where: str) -> JoinSettings:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(table) - _JOIN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(_JOIN_KEYS)}")
    values: dict[str, Any] = {}
    for key in _JOIN_PERIODS:
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}.{key}: must be a number > 0 (got {value!r})")
            values[key] = float(value)
    if "app_id" in table:
        values["app_id"] = _require_str(table, "app_id", where)
    if "store" in table:
        store = _require_str(table, "store", where)
        if not store.startswith(_STORES):
            raise ConfigError(f"{where}.store: must start with {' or '.join(_STORES)} ({store!r})")
        try:
            StoreOptions.parse(store)
        except ValueError as exc:
            raise ConfigError(f"{where}.store: {exc}") from None
        values["store"] = store
    settings = JoinSettings(**values)
    if settings.label_ttl_s < settings.pair_ttl_s:
        raise ConfigError(f"{where}.label_ttl_s: must be >= pair_ttl_s")
    return settings


def _experiments(table: Any, where: str, timeout_s: float = 1.0) -> list[Experiment]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    name = _require_str(table, "name", where)
    where = f"{where} ({name!r})"
    model = _require_str(table, "model", where)
    live = _require_str(table, "live_version", where)
    task = table.get("task", "regression")
    if task not in TASKS:
        raise ConfigError(f"{where}.task: must be one of {', '.join(TASKS)} (got {task!r})")
    if "candidate" in table and "candidates" in table:
        raise ConfigError(f"{where}: give either candidate or candidates, not both")
    candidates = table.get("candidates", [table.get("candidate")])
    if not isinstance(candidates, list) or not candidates:
        raise ConfigError(f"{where}.candidates: must be a non-empty list of versions")
    for candidate in candidates:
        if not isinstance(candidate, str) or not candidate:
            raise ConfigError(f"{where}.candidate: required version string (got {candidate!r})")
        if candidate == live:
            raise ConfigError(f"{where}.candidate: {candidate!r} is the live version")
    positive = table.get("positive_class")
    if positive is not None and not isinstance(positive, str | int):
        raise ConfigError(f"{where}.positive_class: must be a class label (got {positive!r})")
    classes = table.get("classes")
    if classes is not None and (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in classes)
    ):
        raise ConfigError(f"{where}.classes: must be a non-empty list of labels (got {classes!r})")
    if classes is not None and task == "regression":
        raise ConfigError(f"{where}.classes: a regression has no classes")
    decision = (
        None
        if "decision" not in table
        else UserFunction.load(table["decision"], f"{where}.decision", timeout_s)
    )
    kpi_paths = table.get("kpis", [])
    if not isinstance(kpi_paths, list):
        raise ConfigError(f"{where}.kpis: must be a list of 'module:function' (got {kpi_paths!r})")
    kpis = tuple(
        UserFunction.load(p, f"{where}.kpis[{i}]", timeout_s) for i, p in enumerate(kpi_paths)
    )
    proxy = (
        None
        if "proxy" not in table
        else UserFunction.load(table["proxy"], f"{where}.proxy", timeout_s)
    )
    if proxy is not None and not table.get("proxies"):
        raise ConfigError(f"{where}.proxies: name the metrics the proxy function returns")
    metrics = list(table.get("metrics", []))
    if decision is not None and not any(
        m.get("name") == "decision" for m in metrics if isinstance(m, Mapping)
    ):
        metrics.append({"name": "decision", "higher_is_better": False, "kind": "categorical"})
    experiments = []
    for candidate in candidates:
        experiment_name = name if len(candidates) == 1 else f"{name}/{candidate}"
        rules_table = {**table, "name": experiment_name, "metrics": metrics}
        rules = ExperimentRules.from_dict(rules_table, where=where)
        experiments.append(
            Experiment(
                experiment_name,
                model,
                live,
                candidate,
                task,
                rules,
                None if positive is None else str(positive),
                table,
                decision,
                kpis,
                proxy,
                None if classes is None else frozenset(str(c) for c in classes),
            )
        )
    return experiments
