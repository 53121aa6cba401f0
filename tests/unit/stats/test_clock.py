"""Time windows under a clock that cannot be trusted (issue 17, item 4): they evict by
their caller's clock (``expire(now)``), never wait behind one observation stamped ahead."""

from __future__ import annotations

from streams.stats.paired import PairedT
from streams.stats.windows import Window

YEAR_S = 365 * 86_400.0


def test_one_observation_a_year_ahead_does_not_stall_a_60s_window() -> None:
    # The numbers: one observation a year ahead, then 200,000 at 100 per second;
    # the stage evaluates (expire) every 10 s of its own clock.
    window = Window(PairedT(), seconds=60.0)
    window.update(0.0, 1.0, t=YEAR_S)
    for i in range(200_000):
        now = i / 100.0
        window.update(1.0, 1.5 + (i % 7), t=now)
        if i % 1000 == 999:
            window.expire(now)
    window.expire(2_000.0)
    assert window.n <= 60 * 100 + 1  # was 200,001: nothing left after the first entry
    result = window.get()
    assert result.n == window.n


def test_out_of_order_times_are_held_as_the_newest_before_them() -> None:
    window = Window(PairedT(), seconds=10.0)
    for t in (0.0, 5.0, 3.0, 12.0):  # 3.0 is held as 5.0
        window.update(1.0, 2.0, t=t)
    assert window.n == 3  # 0.0 left at 12.0; the late one stays with 5.0
    window.expire(15.0)
    assert window.n == 1
