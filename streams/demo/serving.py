"""The demo's serving app: the live models answer, the hook publishes, labels come later.

:class:`ServingApp` is what a real app does per request -- predict, then hand inputs and
the live prediction to :class:`streams.hook.ShadowPublisher`; :class:`DeliveryApp` does
the same for delivery orders (model ``eta``) through the same hook. :class:`LabelFeeder`
plays the world: it learns each request's truth (class, actual minutes) after a random
delay (so labels arrive out of order) and publishes it with the same hook.
"""

from __future__ import annotations

import heapq
import random
import threading
import time

from streams.demo.models import DemoModel
from streams.demo.traffic import DemoRequest
from streams.downstream.delivery import Delivery, EtaModel
from streams.hook import ShadowPublisher

__all__ = ["DeliveryApp", "LabelFeeder", "ServingApp"]


class ServingApp:
    """Answers requests with the live model and publishes them for shadow evaluation.

    Examples
    --------
    >>> app = ServingApp(live_model, publisher)  # doctest: +SKIP
    >>> request_id, predicted = app.handle(request)  # doctest: +SKIP
    """

    def __init__(self, model: DemoModel, publisher: ShadowPublisher) -> None:
        self.model = model
        self.publisher = publisher
        self.served = 0

    def handle(self, request: DemoRequest) -> tuple[str, int]:
        """Predict (this is what the user gets), publish; the request id and the class.

        The hook's ``track()`` times the prediction: its latency, and its thread CPU time
        when the publisher measures cost (``measure_cost=True``).
        """
        with self.publisher.track(request.features, segments=request.segments) as tracked:
            predicted, tracked.probabilities = self.model.predict_one(request.features)
            tracked.prediction = predicted
        self.served += 1
        return tracked.request_id, predicted


class DeliveryApp:
    """Promises delivery times with the live ETA model; publishes them as another model.

    The order's features (``distance_km``, ``prep_minutes``, ``traffic``) are published as
    the request's inputs -- the shadow worker and the join's decision and KPI functions
    read them -- with the order's ``city`` as segment.

    Examples
    --------
    >>> app = DeliveryApp(live_eta, publisher, model="eta", version="v1")  # doctest: +SKIP
    >>> request_id, minutes = app.handle(order)  # doctest: +SKIP
    """

    def __init__(
        self, model: EtaModel, publisher: ShadowPublisher, *, model_name: str, version: str
    ) -> None:
        self.model, self.publisher = model, publisher
        self.model_name, self.version = model_name, version
        self.served = 0

    def handle(self, order: Delivery) -> tuple[str, float]:
        """Predict the minutes (what the planner uses), publish; the request id and ETA."""
        started = time.perf_counter()
        minutes = self.model.predict_one(order.features)
        latency_ms = (time.perf_counter() - started) * 1000
        request_id = self.publisher.publish(
            dict(order.features),
            minutes,
            model=self.model_name,
            version=self.version,
            latency_ms=latency_ms,
            segments={"city": order.city},
        )
        self.served += 1
        return request_id, minutes


class LabelFeeder:
    """Publishes each request's ground truth after a random delay, in a background thread.

    Parameters
    ----------
    publisher
        The hook publishing the labels.
    max_delay_s
        Delays are uniform in ``[min_delay_s, max_delay_s]``.
    seed
        Seed of the delays.

    Examples
    --------
    >>> feeder = LabelFeeder(publisher, max_delay_s=3.0)  # doctest: +SKIP
    >>> feeder.schedule("r1", 1)  # doctest: +SKIP
    >>> feeder.close()  # publishes what is still due, then stops  # doctest: +SKIP
    """

    def __init__(
        self,
        publisher: ShadowPublisher,
        *,
        min_delay_s: float = 0.2,
        max_delay_s: float = 3.0,
        seed: int = 0,
    ) -> None:
        self.publisher = publisher
        self.min_delay_s, self.max_delay_s = min_delay_s, max_delay_s
        self.published = 0
        self.out_of_order = 0
        self._rng = random.Random(seed)
        self._due: list[tuple[float, int, str, float | int, str | None]] = []
        self._sequence = 0
        self._last_sequence = -1
        self._condition = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="demo-labels", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._condition:
            return len(self._due)

    def schedule(self, request_id: str, label: float | int, model: str | None = None) -> None:
        """The truth of ``request_id`` becomes known after a random delay.

        ``model`` names the request's model when the hook serves several (its default
        model otherwise).
        """
        delay = self._rng.uniform(self.min_delay_s, self.max_delay_s)
        due = (time.monotonic() + delay, self._sequence, request_id, label, model)
        with self._condition:
            heapq.heappush(self._due, due)
            self._sequence += 1
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._due and (self._closing or self._due[0][0] <= time.monotonic()):
                        _, sequence, request_id, label, model = heapq.heappop(self._due)
                        break
                    if self._closing and not self._due:
                        return
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._condition.wait(timeout)
            if sequence < self._last_sequence:
                self.out_of_order += 1
            self._last_sequence = max(self._last_sequence, sequence)
            self.publisher.label(request_id, label, model=model)
            self.published += 1

    def close(self, timeout: float = 30.0) -> None:
        """Publish every scheduled label now, then stop the thread."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join(timeout)
