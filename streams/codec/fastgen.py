"""Avro readers and writers generated from the ``.avsc`` files at import: Python source
written from the parsed schema, so a field added to a record needs no reader or writer
edited by hand.

Generated for Prediction, GroundTruth, JoinEvent and JoinEventBatch (ModelInput is
columnar, its reader and writer stay in :mod:`streams.codec.fastread_input` and
:mod:`streams.codec.fastwrite` and are called for the nested record). Values map as
:mod:`streams.codec.convert` maps them: enums to the :mod:`streams.records` enum of the
same name, records to the dataclass of the same name (filled through its slots), arrays
to tuples, a whole number where only a double fits to a float. Anything else gives up
(``None`` / :class:`~streams.avro_bytes.GiveUp`), and fastavro decides, as for the
hand-written paths (``tests/unit/codec/test_fast.py`` holds them to fastavro).

Examples
--------
>>> from streams.records import Prediction, Role
>>> encode, read = ENCODERS["dev.shadoweval.Prediction"], READERS["dev.shadoweval.Prediction"]
>>> data = encode(bytes(5), Prediction("r1", "m", "v1", Role.LIVE, 7, 1.5))
>>> read(data, 5)[0].value
1.5
>>> print(SOURCE.splitlines()[0])
def read_Prediction(data, i, seg_raw=b'', seg=NO_SEGMENTS):
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

from streams import avro_bytes, records
from streams.codec.fastread_input import NO_SEGMENTS, read_model_input, slot_setters
from streams.codec.fastwrite import encode_model_input
from streams.schema_files import latest_schemas

__all__ = ["ENCODERS", "GENERATED", "READERS", "SOURCE"]

_NS = "dev.shadoweval."
GENERATED = ("Prediction", "GroundTruth", "JoinEvent", "JoinEventBatch")
"""The records read and written by generated code."""
_MAX_LONG = 1 << 63


class _Unsupported(Exception):
    """A type the generator does not write code for: that record keeps fastavro."""


class _Writer:
    """The source of one module of readers and writers, and the objects it refers to."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "short": avro_bytes.SHORT_LEN,
            "read_size": avro_bytes.read_size,
            "read_long": avro_bytes.read_long,
            "read_string_map": avro_bytes.read_string_map,
            "read_double_map": avro_bytes.read_double_map,
            "unpack_double": avro_bytes.unpack_double,
            "pack_double": avro_bytes.pack_double,
            "GiveUp": avro_bytes.GiveUp,
            "text": avro_bytes.text,
            "cached_long": avro_bytes.cached_long,
            "string_map": avro_bytes.string_map,
            "size": avro_bytes.size,
            "NO_SEGMENTS": NO_SEGMENTS,
            "MAX_LONG": _MAX_LONG,
            "_new": object.__new__,
            "read_ModelInput": read_model_input,
            "encode_ModelInput": encode_model_input,
        }
        self.counter = 0

    def name(self, prefix: str, value: Any) -> str:
        self.counter += 1
        key = f"{prefix}_{self.counter}"
        self.env[key] = value
        return key

    def emit(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)

    def record(self, name: str) -> dict[str, Any]:
        schema: dict[str, Any] | None = self.schemas.get(_NS + name)
        if schema is None:
            raise _Unsupported(name)
        return schema

    # ------------------------------------------------------------------ readers
    def reader(self, name: str) -> None:
        schema = self.record(name)
        cls: type[Any] = getattr(records, name)
        names = tuple(f["name"] for f in schema["fields"])
        if not is_dataclass(cls) or {f.name for f in fields(cls)} != set(names):
            raise _Unsupported(f"{name}: the dataclass has other fields than the schema")
        setters = slot_setters(cls, tuple(f.name for f in fields(cls)))
        if not setters:
            raise _Unsupported(f"{name}: the dataclass checks its fields")
        self.emit(0, f"def read_{name}(data, i, seg_raw=b'', seg=NO_SEGMENTS):")
        for k, field in enumerate(schema["fields"]):
            if field["name"] == "segments" and _is_string_map(field["type"]):
                self.read_segments(1, f"v{k}")
                if any(_nests(f["type"]) for f in schema["fields"][k + 1 :]):
                    self.emit(
                        1, f"seg_raw, seg = (data[start:i], v{k}) if i - start > 1 else (b'', v{k})"
                    )
            else:
                self.read_value(1, f"v{k}", field["type"])
        cls_name = self.name("cls", cls)
        self.emit(1, f"record = _new({cls_name})")
        for setter, field_name in zip(setters, [f.name for f in fields(cls)], strict=True):
            self.emit(1, f"{self.name('set', setter)}(record, v{names.index(field_name)})")
        self.emit(1, "return record, i", "")

    def read_segments(self, d: int, var: str) -> None:
        self.emit(
            d,
            "start = i",
            "if data[i] == 0:",
            f"    {var} = {{}}",
            "    i += 1",
            "elif seg_raw and data.startswith(seg_raw, i):",
            f"    {var} = dict(seg)",
            "    i += len(seg_raw)",
            "else:",
            f"    {var}, i = read_string_map(data, i)",
        )

    def read_value(self, d: int, var: str, schema: Any) -> None:
        if isinstance(schema, list):
            self.emit(d, "branch = data[i]", "i += 1")
            for k, branch in enumerate(schema):
                self.emit(d, f"{'if' if k == 0 else 'elif'} branch == {2 * k}:")
                self.read_value(d + 1, var, branch)
            self.emit(d, "else:", "    raise GiveUp")
            return
        if isinstance(schema, dict):
            kind = schema["type"]
            if kind == "enum":
                members = tuple(getattr(records, schema["name"])(s) for s in schema["symbols"])
                self.emit(
                    d,
                    "branch = data[i]",
                    f"if branch & 1 or branch >= {2 * len(members)}:",
                    "    raise GiveUp",
                    f"{var} = {self.name('members', members)}[branch >> 1]",
                    "i += 1",
                )
                return
            if kind == "map" and schema["values"] in ("string", "double"):
                self.emit(d, f"{var}, i = read_{schema['values']}_map(data, i)")
                return
            if kind == "array" and isinstance(schema["items"], str):
                item = schema["items"].removeprefix(_NS)
                self.record(item)
                self.emit(
                    d,
                    "items = []",
                    "while True:",
                    "    count, i = read_size(data, i)",
                    "    if not count:",
                    "        break",
                    "    for _ in range(count):",
                    f"        item, i = read_{item}(data, i)",
                    "        items.append(item)",
                    f"{var} = tuple(items)",
                )
                return
            if kind in ("string", "long", "double", "null") and len(schema) == 1:
                self.read_value(d, var, kind)
                return
            raise _Unsupported(repr(schema))
        if schema == "null":
            self.emit(d, f"{var} = None")
        elif schema == "string":
            self.emit(
                d,
                "n = short[data[i]]",
                "if n < 0:",
                "    n, i = read_size(data, i)",
                "else:",
                "    i += 1",
                f"{var} = data[i : i + n].decode()",
                "i += n",
            )
        elif schema == "long":
            self.emit(d, f"{var}, i = read_long(data, i)")
        elif schema == "double":
            self.emit(d, f"({var},) = unpack_double(data, i)", "i += 8")
        elif schema.startswith(_NS):
            self.record(schema.removeprefix(_NS))
            self.emit(d, f"{var}, i = read_{schema.removeprefix(_NS)}(data, i, seg_raw, seg)")
        else:
            raise _Unsupported(schema)

    # ------------------------------------------------------------------ writers
    def writer(self, name: str) -> None:
        schema = self.record(name)
        self.emit(0, f"def encode_{name}(header, r):", "    parts = [header]", "    try:")
        for field in schema["fields"]:
            self.emit(2, f"v = r.{field['name']}")
            self.write_value(2, field["type"])
        self.emit(
            1,
            "except (ValueError, OverflowError, TypeError, AttributeError):",
            "    return None  # fastavro's path raises the proper EncodeError",
            "return b''.join(parts)",
            "",
        )

    def write_value(self, d: int, schema: Any) -> None:
        if isinstance(schema, list):
            self.write_union(d, schema)
            return
        if isinstance(schema, dict):
            kind = schema["type"]
            if kind == "enum":
                cls = getattr(records, schema["name"])
                index = {cls(s): avro_bytes.size(k) for k, s in enumerate(schema["symbols"])}
                index_name, enum_name = self.name("index", index), self.name("enum", cls)
                self.emit(
                    d,
                    f"b = {index_name}.get(v) if type(v) is {enum_name} else None",
                    "if b is None:",
                    "    return None",
                    "parts.append(b)",
                )
                return
            if kind == "map" and schema["values"] == "string":
                self.emit(
                    d, "m = string_map(v)", "if m is None:", "    return None", "parts.append(m)"
                )
                return
            if kind == "map" and schema["values"] == "double":
                self.emit(
                    d,
                    "if type(v) is not dict:",
                    "    return None",
                    "if v:",
                    "    parts.append(size(len(v)))",
                    "    for key, p in v.items():",
                    "        if type(key) is not str or type(p) is not float:",
                    "            return None",
                    "        parts.append(text(key))",
                    "        parts.append(pack_double(p))",
                    "parts.append(b'\\x00')",
                )
                return
            if kind == "array" and isinstance(schema["items"], str):
                item = schema["items"].removeprefix(_NS)
                cls = self.name("cls", getattr(records, item))
                self.emit(
                    d,
                    "if type(v) is not tuple:",
                    "    return None",
                    "if v:",
                    "    parts.append(size(len(v)))",
                    "    for item in v:",
                    f"        body = encode_{item}(b'', item) if type(item) is {cls} else None",
                    "        if body is None:",
                    "            return None",
                    "        parts.append(body)",
                    "parts.append(b'\\x00')",
                )
                return
            if kind in ("string", "long", "double") and len(schema) == 1:
                self.write_value(d, kind)
                return
            raise _Unsupported(repr(schema))
        if schema == "string":
            self.emit(d, "if type(v) is not str:", "    return None", "parts.append(text(v))")
        elif schema == "long":
            self.emit(
                d,
                "if type(v) is not int or not -MAX_LONG <= v < MAX_LONG:",
                "    return None",
                "parts.append(cached_long(v))",
            )
        elif schema == "double":
            self.emit(
                d, "if type(v) is not float:", "    return None", "parts.append(pack_double(v))"
            )
        else:
            raise _Unsupported(repr(schema))

    def write_union(self, d: int, schema: list[Any]) -> None:
        """Branches by the value's exact type; a whole number takes a double branch (as
        convert writes it) when there is no long one."""
        tests: list[tuple[str, str]] = []
        for k, branch in enumerate(schema):
            mark = f"b'{_escaped(avro_bytes.size(k))}'"
            if branch == "null":
                tests.append(("v is None", f"parts.append({mark})"))
            elif branch in ("string", "long", "double"):
                kind = {"string": "str", "long": "int", "double": "float"}[branch]
                tests.append((f"type(v) is {kind}", f"parts.append({mark})\n{branch}"))
                if branch == "double" and "long" not in schema:
                    tests.append(
                        ("type(v) is int", f"parts.append({mark})\nv = float(v)\n{branch}")
                    )
            elif isinstance(branch, dict) and branch.get("type") == "map":
                tests.append(("type(v) is dict", f"parts.append({mark})\n*"))
            elif isinstance(branch, str) and branch.startswith(_NS):
                item = branch.removeprefix(_NS)
                cls = self.name("cls", getattr(records, item))
                tests.append(
                    (
                        f"type(v) is {cls}",
                        f"body = encode_{item}({mark}, v)\nif body is None:\n"
                        "    return None\nparts.append(body)",
                    )
                )
            else:
                raise _Unsupported(repr(branch))
        for k, (test, action) in enumerate(tests):
            self.emit(d, f"{'if' if k == 0 else 'elif'} {test}:")
            for line in action.split("\n"):
                if line in ("string", "long", "double"):
                    self.write_value(d + 1, line)
                elif line == "*":
                    self.write_value(d + 1, next(b for b in schema if isinstance(b, dict)))
                else:
                    self.emit(d + 1, line)
        self.emit(d, "else:", "    return None")


def _escaped(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


def _is_string_map(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "map" and schema["values"] == "string"


def _nests(schema: Any) -> bool:
    """Whether a field holds records that may repeat the segments (a union with one)."""
    return isinstance(schema, list) and any(
        isinstance(s, str) and s.startswith(_NS) for s in schema
    )


def _generate(
    schemas: dict[str, Any],
) -> tuple[str, dict[str, Callable[..., Any]], dict[str, Callable[..., Any]]]:
    """(source, readers, encoders) of the records in :data:`GENERATED` that the schemas
    and dataclasses allow; a record the generator cannot write stays with fastavro."""
    writer = _Writer(schemas)
    written: list[str] = []
    for name in GENERATED:
        mark = len(writer.lines)
        try:
            writer.reader(name)
            writer.writer(name)
        except _Unsupported:
            del writer.lines[mark:]
            continue
        written.append(name)
    source = "\n".join(writer.lines)
    env = writer.env
    exec(compile(source, "<streams.codec.fastgen>", "exec"), env)
    readers: dict[str, Callable[..., Any]] = {}
    encoders: dict[str, Callable[..., Any]] = {}
    for name in written:
        nested = repr(schemas[_NS + name])
        if all(f"read_{n}" in env for n in GENERATED if n != name and f"'{_NS}{n}'" in nested):
            readers[_NS + name] = env[f"read_{name}"]
            encoders[_NS + name] = env[f"encode_{name}"]
    return source, readers, encoders


SOURCE, READERS, _ENCODE = _generate(latest_schemas())
"""The generated source (print it to read it), and full name -> reader ``(data, i) ->
(record, next i)``."""
ENCODERS = _ENCODE
"""Full name -> ``encode(header, record) -> bytes | None``."""
