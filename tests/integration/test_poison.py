"""Poison traffic on the real broker: every bad record is accounted for, nothing stops.

3,000 good requests go through the hook, a real shadow worker and a ``shadow-eval join``
process, with every kind of bad record mixed in on every input topic (inputs, live and
shadow predictions, labels, join events; the alerts topic too). At the end, per topic,
``produced == processed + dead-lettered + counted`` exactly; the worker, both join stages
and ``shadow-eval alerts tail`` still run; and the verdict on the clearly worse candidate
is the one the same requests without any bad record get.
"""

from __future__ import annotations

from pathlib import Path

from streams.settings import Settings
from streams.topics import create_topics
from tests.integration.poison_run import account, clean_verdict, run_poisoned

GOOD = 3000


def test_every_bad_record_is_accounted_for_and_nothing_stops(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 2})
    create_topics(settings)
    topics = settings.topics
    run = run_poisoned(settings, tmp_path, GOOD)
    assert run.crashes == []  # worker, both join stages and alerts tail still running
    figures = {  # what the accounting is made of, shown if it does not add up
        "produced": dict(run.plan.produced), "counts": dict(run.snapshot.counts),
        "join_metrics": {k: v for k, v in run.join_metrics.items() if k.startswith("shadow_join")},
        "letters": {"/".join(k): v for k, v in run.letters.items()},
    }  # fmt: skip
    assert account(run, settings) == dict.fromkeys(
        ("inputs", "live", "shadow", "labels", "events", "invalid"), 0
    ), figures
    plan, letters, metrics, snapshot = run.plan, run.letters, run.join_metrics, run.snapshot
    bad = plan.bad
    # inputs: the worker consumed every record; each is a prediction or a dead letter.
    m = run.worker
    assert m.consumed == plan.produced["inputs"] == m.produced + m.dead_lettered + m.skipped
    assert m.produced == plan.requests and m.skipped == 0
    for kind in ("undecodable", "wrong_record_type", "nan_features", "too_large"):
        assert letters[("worker", topics.inputs, kind)] == bad[("inputs", kind)], kind
    assert m.dead_lettered == sum(n for (role, _), n in bad.items() if role == "inputs")
    assert m.errors == plan.candidate_errors
    # live, shadow, labels: stage 1 read every record; each was joined, dead-lettered or
    # counted (unknown model or version); invalid ones were joined and then counted.
    events_in = {
        role: metrics[f'shadow_join_events_in_total{{topic="{topic}"}}']
        for role, topic in (("live", topics.live_predictions),
                            ("shadow", topics.shadow_predictions),
                            ("labels", topics.ground_truth))
    }  # fmt: skip
    shadow_produced = m.produced + plan.produced["shadow"]
    assert events_in == {"live": plan.produced["live"], "shadow": shadow_produced,
                         "labels": plan.produced["labels"]}  # fmt: skip
    paired, labelled = snapshot.counts["paired"], snapshot.counts["labelled"]
    unknown_model = metrics['shadow_join_records_total{outcome="unknown_model"}']
    unknown_version = metrics['shadow_join_records_total{outcome="unknown_version"}']
    live_letters = (
        letters[("join", topics.live_predictions, "undecodable")]
        + letters[("join", topics.live_predictions, "too_large")]
    )
    assert plan.produced["live"] == paired + live_letters + unknown_model
    assert live_letters == bad[("live", "undecodable")] + bad[("live", "too_large")]
    assert unknown_model == bad[("live", "unknown_model")]
    shadow_letters = letters[("join", topics.shadow_predictions, "undecodable")]
    assert shadow_produced == paired + shadow_letters + unknown_version
    assert unknown_version == bad[("shadow", "unknown_version")]
    label_letters = letters[("join", topics.ground_truth, "undecodable")]
    assert plan.produced["labels"] == labelled + label_letters
    assert metrics['shadow_join_records_total{outcome="accepted"}'] == 2 * paired + labelled
    # join events: the undecodable ones are dead letters; the rest were judged.
    assert letters[("join", topics.join_events, "undecodable")] == bad[("events", "undecodable")]
    # Counted invalid, exactly, in the snapshot and on the Prometheus page.
    counted = {k: v for k, v in snapshot.counts.items() if k.startswith("invalid:")}
    assert counted == dict(plan.invalid)
    for key, count in plan.invalid.items():
        _, version, reason = key.split(":")
        labels = f'experiment="worse",reason="{reason}",version="{version}"'
        assert metrics[f"shadow_join_invalid_total{{{labels}}}"] == count, key
    # Nothing unaccounted: every dead letter is one the plan injected.
    assert sum(letters.values()) == sum(
        n
        for (role, kind), n in bad.items()
        if role != "alerts" and kind not in ("unknown_model", "unknown_version")
    )
    # The verdict: a clearly worse candidate is rejected, as without the bad records.
    assert snapshot.decision == clean_verdict(plan) == "reject"
    assert "reject" in run.tail_output.lower() and "Traceback" not in run.tail_output
    log = (tmp_path / "join.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    print(f"\npoison: {plan.injected} bad records injected {dict(bad)}, counted invalid "
          f"{dict(plan.invalid)}, dead letters {sum(letters.values())}, candidate errors "
          f"{plan.candidate_errors}, process restarts 0 (join pid and worker thread kept), "
          f"{run.seconds:.1f} s")  # fmt: skip
