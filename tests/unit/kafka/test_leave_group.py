"""``leave_group``: a member (static or not) leaves its group before it closes, so its
partitions move at once instead of after the session timeout."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from streams.kafka.assignment import leave_group
from tests.unit.kafka.fakes import FakeBroker, FakeConsumer


def _joined(broker: FakeBroker, revoked: list[Any]) -> FakeConsumer:
    broker.create("inputs")
    consumer = FakeConsumer(broker, {"group.id": "g", "group.instance.id": "g-1"})
    consumer.subscribe(["inputs"], on_revoke=lambda _c, ps: revoked.extend(ps))
    consumer.consume(1, 0)  # joins
    assert consumer.memberid() and len(consumer.assignment()) == broker.partitions
    return consumer


def test_the_member_is_revoked_and_leaves() -> None:
    broker, revoked = FakeBroker(), []
    consumer = _joined(broker, revoked)
    leave_group(consumer)
    assert consumer.memberid() is None
    assert len(revoked) == broker.partitions and not consumer.assignment()


def test_a_member_that_cannot_leave_is_named(caplog: pytest.LogCaptureFixture) -> None:
    consumer = _joined(FakeBroker(), [])
    consumer.unsubscribe = lambda: None  # type: ignore[method-assign]  # the broker is gone
    with caplog.at_level(logging.WARNING, "streams.kafka"):
        leave_group(consumer, timeout=0.2)
    assert consumer.memberid() == "g-member"
    assert "could not leave group (member g-member)" in caplog.text
    assert "after the session timeout" in caplog.text
