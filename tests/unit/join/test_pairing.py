"""Stage 1: pairing, labels in any order, duplicates, expiry reasons."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from streams.join.experiments import ExperimentsFile
from streams.records import GroundTruth, JoinKind, Prediction, Role
from tests.unit.join.pairing import Outcome, Pairing, PendingRequest, Step

EXPERIMENTS = ExperimentsFile.parse(
    """
[join]
pair_ttl_s = 10
label_ttl_s = 100

[[experiments]]
name = "churn-v2"
model = "churn"
live_version = "v1"
candidates = ["v2", "v3"]
task = "binary"
"""
)
LIVE = Prediction(
    "r1", "churn", "v1", Role.LIVE, 0, "1", {"1": 0.8, "0": 0.2}, 5.0, None, {"c": "DE"}
)
V2 = replace(LIVE, version="v2", role=Role.SHADOW, value="0", latency_ms=7.0)
V3 = replace(LIVE, version="v3", role=Role.SHADOW)
LABEL = GroundTruth("r1", "churn", 50, "1")


def feed(
    pairing: Pairing, records: list[Prediction | GroundTruth], now_ms: int = 0
) -> tuple[PendingRequest | None, list[Step]]:
    state: PendingRequest | None = None
    steps = []
    for record in records:
        if isinstance(record, GroundTruth):
            step = pairing.on_label(state, record, now_ms)
        else:
            step = pairing.on_prediction(state, record, now_ms)
        state = step.state
        steps.append(step)
    return state, steps


def kinds(steps: list[Step]) -> list[tuple[str, str]]:
    return sorted((e.kind.value, e.experiment) for s in steps for e in s.events)


@pytest.mark.parametrize("order", list(itertools.permutations([LIVE, V2, V3, LABEL])))
def test_any_arrival_order_gives_one_paired_and_one_labelled_event_per_candidate(
    order: tuple[Prediction | GroundTruth, ...],
) -> None:
    pairing = Pairing(EXPERIMENTS)
    state, steps = feed(pairing, list(order))
    assert kinds(steps) == [
        ("LABELLED", "churn-v2/v2"),
        ("LABELLED", "churn-v2/v3"),
        ("PAIRED", "churn-v2/v2"),
        ("PAIRED", "churn-v2/v3"),
    ]
    labelled = [e for s in steps for e in s.events if e.kind is JoinKind.LABELLED]
    assert all(e.label == "1" and e.live == LIVE for e in labelled)
    assert sorted((e.candidate for e in labelled), key=repr) == [V2, V3]
    # Once complete, the state keeps only what recognises late duplicates.
    assert state is not None and state.live is None and state.candidates == ()


def test_redelivered_records_are_duplicates_and_emit_nothing() -> None:
    pairing = Pairing(EXPERIMENTS)
    _, steps = feed(pairing, [LIVE, V2, LIVE, V2, LABEL, LABEL, V3, V3, LIVE, LABEL])
    assert [s.outcome for s in steps].count(Outcome.DUPLICATE) == 6
    assert len(kinds(steps)) == 4
    assert all(not s.changed for s in steps if s.outcome is Outcome.DUPLICATE)


def test_unknown_models_and_versions_are_counted_not_stored() -> None:
    pairing = Pairing(EXPERIMENTS)
    _, steps = feed(
        pairing,
        [replace(LIVE, model="other"), replace(V2, version="v9"), replace(LIVE, version="v0")],
    )
    assert [s.outcome for s in steps] == [
        Outcome.UNKNOWN_MODEL,
        Outcome.UNKNOWN_VERSION,
        Outcome.UNKNOWN_VERSION,
    ]
    assert all(s.state is None for s in steps)
    assert pairing.outcomes == {"unknown_model": 1, "unknown_version": 2}


def expire(pairing: Pairing, state: PendingRequest, now_ms: int) -> Step:
    return pairing.expire("r1", state, now_ms)


def reasons(step: Step) -> list[tuple[str, str | None]]:
    return sorted((e.experiment, e.reason) for e in step.events)


def test_live_without_shadow_expires_no_shadow_after_pair_ttl() -> None:
    pairing = Pairing(EXPERIMENTS)
    state, _ = feed(pairing, [LIVE, V2])
    assert state is not None
    assert expire(pairing, state, 9_999).events == ()
    step = expire(pairing, state, 10_000)
    assert reasons(step) == [("churn-v2/v3", "no_shadow")]
    assert step.state is not None  # still waiting for the label of the v2 pair
    final = expire(pairing, step.state, 100_000)
    assert reasons(final) == [("churn-v2/v2", "no_label")]
    assert final.state is None


def test_shadow_without_live_expires_no_live() -> None:
    pairing = Pairing(EXPERIMENTS)
    state, _ = feed(pairing, [V3])
    assert state is not None
    step = expire(pairing, state, 10_000)
    assert reasons(step) == [("churn-v2/v3", "no_live")]
    assert step.state is not None
    assert expire(pairing, step.state, 100_000) == Step(None, ())


def test_label_without_predictions_expires_label_unknown_for_every_experiment() -> None:
    pairing = Pairing(EXPERIMENTS)
    state, _ = feed(pairing, [LABEL])
    assert state is not None
    step = expire(pairing, state, 10_000)
    assert step.events == () and step.state is not None
    final = expire(pairing, step.state, 100_000)
    assert reasons(final) == [("churn-v2/v2", "label_unknown"), ("churn-v2/v3", "label_unknown")]
    assert final.state is None


def test_expiry_is_idempotent_until_the_state_changes() -> None:
    pairing = Pairing(EXPERIMENTS)
    state, _ = feed(pairing, [LIVE])
    assert state is not None
    first = expire(pairing, state, 20_000)
    assert first.state is not None
    again = expire(pairing, first.state, 20_000)
    assert again.events == () and not again.changed


def test_a_late_candidate_after_its_experiment_expired_is_not_paired() -> None:
    pairing = Pairing(EXPERIMENTS)
    state, _ = feed(pairing, [LIVE])
    assert state is not None
    step = expire(pairing, state, 10_000)
    late = pairing.on_prediction(step.state, V2, 10_001)
    assert late.events == ()  # already counted as no_shadow; never counted twice
