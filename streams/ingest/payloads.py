"""Inference payloads as a serving platform logs them: rows of features and predictions.

Two protocols, told apart by their keys:

* **KServe v1** (``/v1/models/NAME:predict``): request ``{"instances": [...]}`` (each
  instance a list of values or a dict of named features), response
  ``{"predictions": [...]}``;
* **Open Inference Protocol** (KServe v2): request ``{"inputs": [tensor, ...]}``, response
  ``{"outputs": [tensor, ...]}``. One 2-D tensor is one row per line; several tensors
  of shape ``[n]`` or ``[n, 1]`` are one column each, named by the tensor.

Unnamed columns take the names of ``columns`` (``--features``), else ``f0, f1, ...``.
Anything else raises :class:`PayloadError` (the event is answered 400 and counted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PayloadError", "request_rows", "response_values"]


class PayloadError(ValueError):
    """The payload is not an inference request or response this module understands."""


def _names(count: int, columns: Sequence[str] | None) -> list[str]:
    if columns:
        if len(columns) != count:
            raise PayloadError(f"{count} values per row, but {len(columns)} feature names")
        return list(columns)
    return [f"f{i}" for i in range(count)]


def _tensor(value: Any) -> tuple[str, list[int], list[Any]]:
    if not isinstance(value, Mapping):
        raise PayloadError("a tensor is not an object")
    shape, data = value.get("shape"), value.get("data")
    if not isinstance(shape, list) or not shape or not isinstance(data, list):
        raise PayloadError(f"tensor {value.get('name')!r} has no shape or data")
    flat = _flatten(data)
    size = 1
    for dim in shape:
        size *= int(dim)
    if size != len(flat):
        raise PayloadError(f"tensor {value.get('name')!r} has shape {shape}, {len(flat)} values")
    return str(value.get("name", "")), [int(d) for d in shape], flat


def _flatten(data: list[Any]) -> list[Any]:
    if data and isinstance(data[0], list):  # the protocol allows nested row-major data
        return [v for row in data for v in _flatten(row)]
    return data


def _oip_rows(tensors: Any, columns: Sequence[str] | None) -> list[dict[str, Any]]:
    if not isinstance(tensors, list) or not tensors:
        raise PayloadError("'inputs' is not a non-empty list of tensors")
    parsed = [_tensor(t) for t in tensors]
    if len(parsed) == 1 and len(parsed[0][1]) == 2 and parsed[0][1][1] != 1:
        _, (rows, width), flat = parsed[0]
        names = _names(width, columns)
        return [dict(zip(names, flat[r * width : (r + 1) * width], strict=True))
                for r in range(rows)]  # fmt: skip
    rows = parsed[0][1][0]
    for name, shape, _ in parsed:
        if shape[0] != rows or any(d != 1 for d in shape[1:]):
            raise PayloadError(f"tensor {name!r} has shape {shape}, not one value per row")
    return [{name: flat[r] for name, _, flat in parsed} for r in range(rows)]


def request_rows(payload: Any, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The feature rows of an inference request, one dict per row.

    Examples
    --------
    >>> request_rows({"instances": [[6.8, 2.8], [6.0, 3.4]]}, ["length", "width"])
    [{'length': 6.8, 'width': 2.8}, {'length': 6.0, 'width': 3.4}]
    >>> request_rows({"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64",
    ...                           "data": [6.8, 2.8]}]})
    [{'f0': 6.8, 'f1': 2.8}]
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("the request is not a JSON object")
    if "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise PayloadError("'instances' is not a non-empty list")
        rows = []
        for instance in instances:
            if isinstance(instance, Mapping):
                rows.append(dict(instance))
            elif isinstance(instance, list):
                rows.append(dict(zip(_names(len(instance), columns), instance, strict=True)))
            else:
                rows.append(dict(zip(_names(1, columns), [instance], strict=True)))
        return rows
    if "inputs" in payload:
        return _oip_rows(payload["inputs"], columns)
    raise PayloadError("neither 'instances' (KServe v1) nor 'inputs' (Open Inference Protocol)")


def response_values(payload: Any) -> list[Any]:
    """One prediction per row of an inference response (the ``predict`` output, else the
    first, for the Open Inference Protocol).

    Examples
    --------
    >>> response_values({"predictions": [1, 1]})
    [1, 1]
    >>> response_values({"outputs": [{"name": "predict", "shape": [2, 1],
    ...                               "datatype": "INT64", "data": [1, 0]}]})
    [1, 0]
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("the response is not a JSON object")
    if "predictions" in payload:
        predictions = payload["predictions"]
        if not isinstance(predictions, list):
            raise PayloadError("'predictions' is not a list")
        return predictions
    if "outputs" in payload:
        outputs = payload["outputs"]
        if not isinstance(outputs, list) or not outputs:
            raise PayloadError("'outputs' is not a non-empty list of tensors")
        chosen = next((t for t in outputs if isinstance(t, Mapping)
                       and t.get("name") == "predict"), outputs[0])  # fmt: skip
        name, shape, flat = _tensor(chosen)
        if any(d != 1 for d in shape[1:]):
            raise PayloadError(f"output {name!r} has shape {shape}, not one value per row")
        return flat
    raise PayloadError("neither 'predictions' (KServe v1) nor 'outputs' (Open Inference Protocol)")
