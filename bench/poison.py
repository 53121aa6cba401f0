"""Poison traffic at scale: every bad record accounted for, no crash, the verdict unchanged.

Runs the machinery of ``tests/integration/test_poison.py`` (a real shadow worker, a
``shadow-eval join`` process and ``shadow-eval alerts tail`` on a real broker) with
``--good`` requests (100,000) and, every ``--bad-every`` (100) of them, one round of every
kind of bad record on every input topic; 9% of the requests also get a bad candidate
answer, live prediction or label. Prints ONE JSON object::

    {"injected": N, "unaccounted": 0, "crashes": 0, "verdict_unchanged": true, ...}

``injected`` counts the records produced bad plus the predictions and labels the validity
gate must count; ``unaccounted`` is the sum over topics of ``|produced - processed -
dead-lettered - counted|``; ``crashes`` the components not running at the end;
``verdict_unchanged`` whether the streamed verdict equals the pure core's on the same
requests without any bad record. Starts a local broker unless ``SHADOW_KAFKA_BOOTSTRAP``
is set.

    python bench/poison.py --json [--good 100000] [--bad-every 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import broker_settings

from streams.topics import create_topics
from tests.integration.poison_run import account, clean_verdict, run_poisoned


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (default)")
    ap.add_argument("--good", type=int, default=100_000)
    ap.add_argument("--bad-every", type=int, default=100)
    args = ap.parse_args(argv)
    with broker_settings() as (base, broker), tempfile.TemporaryDirectory() as directory:
        settings = base.model_copy(
            update={"topic_prefix": f"poison{time.time_ns() % 10**8}", "partitions": 2}
        )
        create_topics(settings)
        run = run_poisoned(settings, Path(directory), args.good, args.bad_every, timeout=1800)
        unaccounted = account(run, settings)
    plan = run.plan
    streamed, clean = run.snapshot.decision, clean_verdict(plan)
    report = {
        "injected": plan.injected + sum(plan.invalid.values()),
        "unaccounted": sum(unaccounted.values()),
        "crashes": len(run.crashes),
        "verdict_unchanged": streamed == clean,
        "good": args.good,
        "bad_records": plan.injected,
        "counted_invalid": sum(plan.invalid.values()),
        "candidate_errors": plan.candidate_errors,
        "by_kind": {f"{role}:{kind}": n for (role, kind), n in sorted(plan.bad.items())},
        "invalid": dict(sorted(plan.invalid.items())),
        "dead_letters": sum(run.letters.values()),
        "unaccounted_by_topic": unaccounted,
        "crash_reasons": run.crashes,
        "verdict": streamed,
        "clean_verdict": clean,
        "seconds": round(run.seconds, 1),
        "broker": broker,
    }
    print(json.dumps(report))
    return 0 if report["unaccounted"] == 0 and not run.crashes and streamed == clean else 1


if __name__ == "__main__":
    sys.exit(main())
