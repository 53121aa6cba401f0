"""``shadow-eval demo serve``: the demo's serving app against an existing broker.

For docker-compose: publishes the demo's requests, live predictions (model ``churn``,
version ``v1`` by default, as in ``deploy/experiments.toml``) and delayed labels to the
broker of ``SHADOW_KAFKA_BOOTSTRAP``, forever or for ``requests`` requests.
"""

from __future__ import annotations

import logging
import threading
import time

from streams.demo.models import load_data, train_models
from streams.demo.serving import LabelFeeder, ServingApp
from streams.demo.traffic import requests
from streams.hook import ShadowPublisher
from streams.settings import Settings

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(
    settings: Settings,
    stop: threading.Event,
    *,
    model: str = "churn",
    version: str = "v1",
    requests_n: int | None = None,
    rate: float = 20.0,
    max_label_delay_s: float = 10.0,
    seed: int = 0,
    log_every_s: float = 10.0,
) -> int:
    """Serve until ``stop`` is set or ``requests_n`` requests are served; how many were.

    Examples
    --------
    >>> serve(Settings(), threading.Event(), requests_n=100)  # doctest: +SKIP
    100
    """
    data = load_data()
    live = train_models(data)[0]
    publisher = ShadowPublisher(
        settings, model=model, version=version, close_at_exit=False, measure_cost=True
    )
    feeder = LabelFeeder(publisher, max_delay_s=max_label_delay_s, seed=seed)
    app = ServingApp(live, publisher)
    interval = 1.0 / rate
    next_at = last_log = time.monotonic()
    try:
        for request in requests(data, requests_n, seed=seed):
            if stop.is_set():
                break
            request_id, _ = app.handle(request)
            feeder.schedule(request_id, request.label)
            next_at += interval
            stop.wait(max(next_at - time.monotonic(), 0.0))
            if time.monotonic() - last_log >= log_every_s:
                last_log = time.monotonic()
                log.info("demo serve: %d requests served, %s", app.served, publisher.counters)
    finally:
        feeder.close()
        publisher.close()
    return app.served
