"""``shadow-eval worker --oip-url ...``: the options of a candidate served over the Open
Inference Protocol, and the candidate they describe."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

__all__ = ["oip_candidate", "oip_options"]

F = TypeVar("F", bound=Callable[..., Any])
OPTIONS = ("oip_url", "oip_model", "oip_version", "oip_batch", "oip_concurrency",
           "oip_retries", "oip_ready_timeout")  # fmt: skip


def oip_options(function: F) -> F:
    """Add the ``--oip-*`` options; the command gets them as one dict ``oip``."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["oip"] = {name: kwargs.pop(name) for name in OPTIONS}
        return function(*args, **kwargs)

    decorators = [
        click.option("--oip-url", metavar="URL",
                     help="An Open Inference Protocol server (MLServer, KServe, Triton) "
                     "serving the candidate, instead of --model."),
        click.option("--oip-model", metavar="NAME", help="The model's name on that server."),
        click.option("--oip-version", metavar="V",
                     help="The model's version on the server [its default]."),
        click.option("--oip-batch", type=click.IntRange(min=1), default=64, show_default=True,
                     help="Inputs per inference request."),
        click.option("--oip-concurrency", type=click.IntRange(min=1), default=4,
                     show_default=True, help="Requests in flight at once."),
        click.option("--oip-retries", type=click.IntRange(min=0), default=3, show_default=True,
                     help="Retries of a request on connection errors and 429/502/503/504."),
        click.option("--oip-ready-timeout", type=click.FloatRange(min=0), default=30.0,
                     show_default=True,
                     help="Seconds to wait at start for the server and model to be ready."),
    ]  # fmt: skip
    result: Any = wrapper
    for decorator in reversed(decorators):
        result = decorator(result)
    return result  # type: ignore[no-any-return]


def oip_candidate(oip: dict[str, Any], features: Sequence[str] | None, timeout_ms: float) -> Any:
    """The ready :class:`~streams.oip.OIPCandidate` the options describe, or ``None``
    without ``--oip-url``; a server or model not ready is a one-line error."""
    if oip["oip_url"] is None:
        if oip["oip_model"] is not None:
            raise click.UsageError("--oip-model needs --oip-url")
        return None
    if oip["oip_model"] is None:
        raise click.UsageError("--oip-url needs --oip-model NAME")
    from streams.oip import OIPCandidate, OIPNotReady, OIPOptions

    options = OIPOptions(
        url=oip["oip_url"],
        model=oip["oip_model"],
        version=oip["oip_version"],
        features=tuple(features) if features else None,
        batch_size=oip["oip_batch"],
        concurrency=oip["oip_concurrency"],
        timeout_ms=timeout_ms or 5000.0,
        retries=oip["oip_retries"],
    )
    candidate = OIPCandidate(options)
    try:
        candidate.wait_ready(oip["oip_ready_timeout"])
    except OIPNotReady as exc:
        candidate.close()
        raise click.ClickException(str(exc)) from None
    return candidate
