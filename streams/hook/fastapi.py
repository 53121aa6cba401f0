"""FastAPI integration: one publisher per app, handed to routes as a dependency.

Needs the ``fastapi`` extra. The publisher is created at startup and flushed and closed at
shutdown by :func:`shadow_lifespan`; routes receive it with ``Depends(get_publisher)``
(or the ``Publisher`` annotation).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from streams.hook.publisher import ShadowPublisher

__all__ = ["STATE_ATTRIBUTE", "Publisher", "get_publisher", "shadow_lifespan"]

STATE_ATTRIBUTE = "shadow_publisher"
"""Where the publisher lives: ``app.state.shadow_publisher``."""


def shadow_lifespan(
    make_publisher: Callable[[], ShadowPublisher], *, close_timeout: float = 10.0
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan`` that creates the publisher at startup and closes it at shutdown.

    Parameters
    ----------
    make_publisher
        Builds the publisher (called once, at startup).
    close_timeout
        Seconds shutdown waits for records still in flight.

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI(lifespan=shadow_lifespan(lambda: ShadowPublisher(model="m")))
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        publisher = make_publisher()
        setattr(app.state, STATE_ATTRIBUTE, publisher)
        try:
            yield
        finally:
            publisher.close(close_timeout)

    return lifespan


def get_publisher(request: Request) -> ShadowPublisher:
    """The app's publisher, as a FastAPI dependency: ``Depends(get_publisher)``."""
    publisher: Any = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if not isinstance(publisher, ShadowPublisher):
        raise RuntimeError(
            "no ShadowPublisher on app.state; create the app with "
            "FastAPI(lifespan=shadow_lifespan(...)) or set app.state.shadow_publisher"
        )
    return publisher


Publisher = Annotated[ShadowPublisher, Depends(get_publisher)]
"""Route parameter annotation: ``def predict(body: Body, shadow: Publisher): ...``."""
