"""No-code capture: inference payloads a serving platform already logs, published through
the producer hook. ``shadow-eval ingest cloudevents`` takes KServe's inference-logger
CloudEvents (the ``ingest`` extra: the ``cloudevents`` SDK)."""

from streams.ingest.pairing import Half, Pair, Pairing
from streams.ingest.payloads import PayloadError, request_rows, response_values

__all__ = ["Half", "Pair", "Pairing", "PayloadError", "request_rows", "response_values"]
