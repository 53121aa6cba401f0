"""Candidates served over the Open Inference Protocol (KServe v2 REST: MLServer, KServe,
Triton): ``shadow-eval worker --oip-url URL --oip-model NAME``. Needs the ``oip`` extra
(httpx); the JSON shapes live in :mod:`streams.oip.tensors`, the calls in
:mod:`streams.oip.client`.
"""

from streams.oip.client import OIPCandidate, OIPNotReady, OIPOptions
from streams.oip.tensors import OIPResponseError, build_request, parse_values

__all__ = [
    "OIPCandidate",
    "OIPNotReady",
    "OIPOptions",
    "OIPResponseError",
    "build_request",
    "parse_values",
]
