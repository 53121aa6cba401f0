"""Deterministic sampling by request id, so a request's input, prediction and label agree."""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["Sampler", "sample_point"]

_SCALE = 1.0 / 2**64


def sample_point(request_id: str) -> float:
    """Where ``request_id`` falls in ``[0, 1)``: the first 8 bytes of its blake2b hash.

    Examples
    --------
    >>> 0.0 <= sample_point("r1") < 1.0, sample_point("r1") == sample_point("r1")
    (True, True)
    """
    digest = blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") * _SCALE


class Sampler:
    """Keeps a request when its :func:`sample_point` is below ``rate``.

    Every process that uses the same rate (the serving app, a label job) keeps the same
    requests, so a kept request has its input, live prediction and label all published.

    Parameters
    ----------
    rate
        Fraction of requests kept, in ``[0, 1]``.

    Examples
    --------
    >>> Sampler(1.0).keep("anything"), Sampler(0.0).keep("anything")
    (True, False)
    >>> s = Sampler(0.25)
    >>> s.keep("r1") == (sample_point("r1") < 0.25)
    True
    """

    __slots__ = ("rate",)

    def __init__(self, rate: float = 1.0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample_rate must be in [0, 1], got {rate!r}")
        self.rate = float(rate)

    def keep(self, request_id: str) -> bool:
        """Whether this request is published."""
        if self.rate >= 1.0:
            return True
        if self.rate <= 0.0:
            return False
        return sample_point(request_id) < self.rate
