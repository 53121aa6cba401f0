"""Open Inference Protocol (KServe v2) JSON: inputs to a request body, a response to values.

No HTTP here, so the byte-exact shapes are unit-tested without a server.

The request carries the inputs' features in the configured order. When every feature of
the first input is numeric, that is one ``FP64`` tensor ``input-0`` of shape ``[n, k]``:
what scikit-learn, XGBoost and LightGBM runtimes read as a 2-D array. When some are
categorical, it is one tensor per feature (``FP64`` or ``BYTES``, shape ``[n, 1]``, named
by the feature) with ``content_type: "pd"``, the protocol's form of a data frame. An
input whose feature types differ from the first's cannot share the request: it is
returned as an error, alone, not sent.

The response's output tensor ``predict`` (else the first one) gives one value per input:
``FP16/32/64`` are regression values, integers, ``BOOL`` and ``BYTES`` are class labels
(as ``str``, like the in-process adapter's). A ``predict_proba`` tensor does not name its
classes, so it is not turned into probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from streams.records import ModelInput

__all__ = ["OIPResponseError", "Request", "build_request", "parse_values"]

FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
LABEL_TYPES = frozenset(
    {"BOOL", "BYTES", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
OUTPUT = "predict"


class OIPResponseError(ValueError):
    """The server's answer is not an inference response for this request."""


class Request(NamedTuple):
    """A request body and what it could not hold."""

    body: dict[str, Any]
    """The JSON body of ``POST /v2/models/{name}/infer``."""
    sent: list[int]
    """Positions (in the given inputs) of the rows of the body's tensors, in order."""
    refused: dict[int, str]
    """Positions not sent, with why (a per-input error)."""


def _kinds(record: ModelInput, columns: Sequence[str]) -> tuple[bool, ...]:
    numeric = record.numeric
    return tuple(name in numeric for name in columns)


def build_request(inputs: Sequence[ModelInput], columns: Sequence[str], request_id: str) -> Request:
    """The body of one inference request for ``inputs``, features in ``columns`` order.

    Parameters
    ----------
    inputs
        The inputs of one call; each has every feature of ``columns`` (the worker checks).
    columns
        Feature names in the model's column order.
    request_id
        The body's ``id``, echoed by the server.

    Examples
    --------
    >>> rows = [ModelInput("r1", "m", 0, {"a": 1.0, "b": 2.0}),
    ...         ModelInput("r2", "m", 0, {"a": 3.0, "b": 4.0})]
    >>> build_request(rows, ["b", "a"], "x").body["inputs"]
    [{'name': 'input-0', 'shape': [2, 2], 'datatype': 'FP64', 'data': [2.0, 1.0, 4.0, 3.0]}]
    >>> mixed = [ModelInput("r1", "m", 0, {"a": 1.0}, {"plan": "pro"})]
    >>> [t["datatype"] for t in build_request(mixed, ["a", "plan"], "y").body["inputs"]]
    ['FP64', 'BYTES']
    """
    kinds = _kinds(inputs[0], columns)
    sent: list[int] = []
    refused: dict[int, str] = {}
    for position, record in enumerate(inputs):
        mine = _kinds(record, columns)
        if mine == kinds:
            sent.append(position)
            continue
        differ = [n for n, a, b in zip(columns, kinds, mine, strict=True) if a != b]
        refused[position] = (
            f"feature types differ from the batch's first input: {', '.join(differ)}"
        )
    rows = [inputs[p] for p in sent]
    body: dict[str, Any] = {"id": request_id}
    if all(kinds):
        data = [r.numeric[name] for r in rows for name in columns]
        body["inputs"] = [
            {"name": "input-0", "shape": [len(rows), len(columns)], "datatype": "FP64",
             "data": data}
        ]  # fmt: skip
        return Request(body, sent, refused)
    tensors = []
    for name, numeric in zip(columns, kinds, strict=True):
        values = [r.numeric[name] if numeric else r.categorical[name] for r in rows]
        tensors.append(
            {"name": name, "shape": [len(rows), 1], "datatype": "FP64" if numeric else "BYTES",
             "data": values}
        )  # fmt: skip
    body["inputs"] = tensors
    body["parameters"] = {"content_type": "pd"}
    return Request(body, sent, refused)


def _output(response: Mapping[str, Any]) -> Mapping[str, Any]:
    outputs = response.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise OIPResponseError(f"no outputs in the response: {str(response)[:200]}")
    for tensor in outputs:
        if isinstance(tensor, Mapping) and tensor.get("name") == OUTPUT:
            return tensor
    first = outputs[0]
    if not isinstance(first, Mapping):
        raise OIPResponseError(f"an output is not a tensor: {str(first)[:200]}")
    return first


def parse_values(response: Mapping[str, Any], rows: int) -> list[float | str]:
    """One value per row of the request from an inference response.

    Raises
    ------
    OIPResponseError
        No output, an unknown datatype, or a shape that is not one value per row.

    Examples
    --------
    >>> parse_values({"outputs": [{"name": "predict", "shape": [2, 1],
    ...                            "datatype": "INT64", "data": [1, 0]}]}, 2)
    ['1', '0']
    >>> parse_values({"outputs": [{"name": "y", "shape": [2],
    ...                            "datatype": "FP64", "data": [0.5, 1.5]}]}, 2)
    [0.5, 1.5]
    """
    tensor = _output(response)
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    name = tensor.get("name")
    if not isinstance(data, list) or not isinstance(shape, list):
        raise OIPResponseError(f"output {name!r} has no data or shape")
    per_row = 1
    for size in shape[1:]:
        per_row *= int(size)
    if not shape or int(shape[0]) != rows or per_row != 1 or len(data) != rows:
        raise OIPResponseError(
            f"output {name!r} has shape {shape} and {len(data)} values, "
            f"expected one value for each of {rows} rows"
        )
    if datatype in FLOAT_TYPES:
        return [float(v) for v in data]
    if datatype == "BOOL":
        return [str(bool(v)) for v in data]
    if datatype in LABEL_TYPES:
        return [str(v) for v in data]
    raise OIPResponseError(f"output {name!r} has datatype {datatype!r}, not a number or label")
