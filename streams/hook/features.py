"""Turning what a serving app hands the hook into record fields: features, labels, privacy.

Everything here runs in the hook's background thread, never on the request path.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

__all__ = ["Features", "Privacy", "split_features", "to_label", "to_probabilities"]

_NUMERIC_TYPES = frozenset({float, int, bool})


@dataclass(slots=True)
class Features:
    """A request's features, split the way :class:`streams.records.ModelInput` holds them."""

    numeric: dict[str, float] = field(default_factory=dict)
    categorical: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """numpy arrays and scalars to Python lists and numbers, so JSON can hold them."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def split_features(features: Mapping[str, Any] | None) -> Features:
    """Numbers are numeric, strings categorical, anything else (lists, dicts, None) extra.

    ``bool`` and numpy numbers count as numbers; numpy arrays go to ``extra`` as lists.

    Examples
    --------
    >>> f = split_features({"age": 41, "plan": "pro", "tags": ["a"], "note": None})
    >>> f.numeric, f.categorical, f.extra
    ({'age': 41}, {'plan': 'pro'}, {'tags': ['a'], 'note': None})
    """
    out = Features()
    if features:
        _split_into(features, out.numeric, out.categorical, out.extra)
    return out


def _split_into(
    features: Mapping[str, Any],
    numeric: dict[str, float],
    categorical: dict[str, str],
    extra: dict[str, Any],
) -> None:
    numbers_ = _NUMERIC_TYPES
    for name, value in features.items():
        kind = type(value)
        if kind in numbers_:
            numeric[name] = value
        elif kind is str:
            categorical[name] = value
        elif isinstance(value, str):
            categorical[name] = str(value)
        elif isinstance(value, numbers.Real):
            numeric[name] = float(value)
        elif getattr(getattr(value, "dtype", None), "kind", None) == "b" and not value.ndim:
            numeric[name] = bool(value)  # numpy bool_
        else:
            extra[name] = _plain(value)


def to_label(value: Any) -> float | str | None:
    """A live prediction as the record holds it: floats stay numbers, classes become text.

    ``int``, ``bool`` and numpy integers are class labels (``"3"``, ``"True"``);
    floats (and numpy floats) are regression values; anything else is ``str(value)``.

    Examples
    --------
    >>> to_label(0.25), to_label(3), to_label(True), to_label("churn"), to_label(None)
    (0.25, '3', 'True', 'churn', None)
    """
    if value is None:
        return None
    kind = type(value)
    if kind is float or kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool or kind is int:
        return str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "dtype", None) is not None and getattr(value, "ndim", 1) == 0:
        return to_label(value.item())
    return str(value)


def to_probabilities(probabilities: Mapping[Any, Any] | None) -> dict[str, float] | None:
    """Class label -> probability with text labels and float values.

    Examples
    --------
    >>> to_probabilities({1: 0.75, 0: 0.25})
    {'1': 0.75, '0': 0.25}
    """
    if probabilities is None:
        return None
    return {
        label if type(label) is str else str(to_label(label)): float(p)
        for label, p in probabilities.items()
    }


class Privacy:
    """Feature rules applied before anything leaves the process.

    Parameters
    ----------
    allow
        Only these feature names are published (``None``: all of them).
    deny
        These feature names are never published (wins over ``allow``).
    hash_fields
        These features (and segment tags) are replaced by a salted blake2b hash in hex,
        published as categorical features: the same value gives the same hash, so
        distributions and joins still work, but the value itself never leaves.
    salt
        Secret salt of the hash; keep it out of logs and source control.

    Rules apply to top-level feature names; values inside ``extra`` structures are kept
    or dropped as a whole.

    Examples
    --------
    >>> p = Privacy(deny={"ssn"}, hash_fields={"email"}, salt="s3cret")
    >>> f = p.apply(split_features({"age": 41, "ssn": "123", "email": "a@b.c"}))
    >>> sorted(f.numeric), sorted(f.categorical), len(f.categorical["email"])
    (['age'], ['email'], 32)
    """

    __slots__ = ("_allow", "_deny", "_hash", "_salt")

    def __init__(
        self,
        allow: Collection[str] | None = None,
        deny: Collection[str] = (),
        hash_fields: Collection[str] = (),
        salt: str | bytes = b"",
    ) -> None:
        self._allow = None if allow is None else frozenset(allow)
        self._deny = frozenset(deny)
        self._hash = frozenset(hash_fields)
        self._salt = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
        if len(self._salt) > 64:
            raise ValueError("the hash salt may be at most 64 bytes (a blake2b key)")

    @property
    def active(self) -> bool:
        """Whether any rule is set (when not, :meth:`apply` is skipped)."""
        return self._allow is not None or bool(self._deny) or bool(self._hash)

    def hash_value(self, value: Any) -> str:
        """The salted hash (32 hex digits) of one value; strings hash as their UTF-8 text.

        Examples
        --------
        >>> Privacy(salt="k").hash_value("x") == Privacy(salt="k").hash_value("x")
        True
        """
        text = value if isinstance(value, str) else json.dumps(_plain(value), sort_keys=True)
        return blake2b(text.encode("utf-8"), digest_size=16, key=self._salt).hexdigest()

    def allowed(self, name: str) -> bool:
        """Whether feature ``name`` may be published at all."""
        if name in self._deny:
            return False
        return self._allow is None or name in self._allow

    def apply(self, features: Features) -> Features:
        """A new :class:`Features` with denied features removed and hashed ones hashed."""
        out = Features()
        pairs: tuple[tuple[Mapping[str, Any], dict[str, Any]], ...] = (
            (features.numeric, out.numeric),
            (features.categorical, out.categorical),
            (features.extra, out.extra),
        )
        for source, target in pairs:
            for name, value in source.items():
                if not self.allowed(name):
                    continue
                if name in self._hash:
                    out.categorical[name] = self.hash_value(value)
                else:
                    target[name] = value
        return out

    def apply_segments(self, segments: Mapping[str, str]) -> dict[str, str]:
        """Segment tags under the same deny and hash rules (``allow`` does not apply)."""
        return {
            name: self.hash_value(value) if name in self._hash else value
            for name, value in segments.items()
            if name not in self._deny
        }
