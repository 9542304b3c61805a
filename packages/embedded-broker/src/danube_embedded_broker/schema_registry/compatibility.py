"""Schema compatibility checks.

As on the real broker, a new schema is compared with the subject's LATEST version only (not
transitively), mode ``none`` accepts anything, and a change of schema type is incompatible in any other
mode. ``bytes``/``string``/``number``/``protobuf`` versions of the same type are always compatible.

Terminology: *backward* = the new schema (reader) can read data written with the old one (writer);
*forward* = the old schema (reader) can read data written with the new one; *full* = both.

JSON Schema (structural check, ``reader`` must accept every instance the ``writer`` accepts):

* types: every type the writer allows must be allowed by the reader (``integer`` widens to ``number``);
  a reader that declares a type where the writer declares none narrows the type;
* ``enum``/``const``: every value the writer allows must be allowed by the reader;
* objects: a field required by the reader must be required by the writer, unless the reader's property
  schema has a ``default`` (a reader can fill it in); properties present in both are checked recursively;
  a writer property the reader no longer declares is fine only when the reader allows it through
  ``patternProperties``/``additionalProperties`` (checked recursively, and an error when
  ``additionalProperties: false``); ``additionalProperties: false`` on the reader against an explicitly
  open writer is an error; ``minProperties``/``maxProperties`` must not tighten;
* arrays: ``items`` recursively; ``minItems``/``maxItems`` must not tighten; ``uniqueItems`` must not be
  added;
* numbers: ``minimum``/``exclusiveMinimum`` must not rise, ``maximum``/``exclusiveMaximum`` must not fall,
  ``multipleOf`` must divide the writer's;
* strings: ``minLength``/``maxLength`` must not tighten; a ``pattern`` or ``format`` must not be added or
  changed;
* ``anyOf``/``oneOf``: each writer alternative must be accepted by some reader alternative; each member of a
  reader's ``allOf`` must accept the writer;
* local ``$ref`` (``#/...``) is followed; remote refs, ``not``, ``if``/``then``/``else`` and dependencies are
  not analysed (treated as compatible).

Assumption (the usual one for evolving event schemas, and what the real broker does): properties a writer
schema does not declare are not present in its data, so adding an optional property is compatible in both
directions even when the old schema leaves ``additionalProperties`` open.

Avro: reader/writer schema resolution per the Avro specification (named types, field defaults, enum
symbols and defaults, unions, arrays, maps, fixed, numeric promotions int->long->float->double and
string<->bytes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from danube_embedded_broker.schema_registry.model import canonical_json

_ALL_JSON_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})


def check_compatibility(mode: str, old_type: str, old: Any, new_type: str, new: Any) -> list[str]:
    """Errors that make ``new`` incompatible with ``old`` under ``mode`` (empty list = compatible).

    ``old``/``new`` are the parsed definitions (JSON values for avro/json_schema, ignored otherwise).
    """
    if mode == "none":
        return []
    if old_type != new_type:
        return [
            f"Schema types must match (cannot change from {old_type} to {new_type}) "
            f"in compatibility mode {mode}"
        ]
    if old_type not in ("json_schema", "avro"):
        return []
    checker = _check_json if old_type == "json_schema" else _check_avro
    errors: list[str] = []
    if mode in ("backward", "full"):
        errors += checker(
            "Backward", reader=new, writer=old, reader_name="new schema", writer_name="old schema"
        )
    if mode in ("forward", "full"):
        errors += checker(
            "Forward", reader=old, writer=new, reader_name="old schema", writer_name="new schema"
        )
    return errors


# --------------------------------------------------------------------------------------------- JSON Schema


def _check_json(label: str, *, reader: Any, writer: Any, reader_name: str, writer_name: str) -> list[str]:
    checker = _JsonChecker(label, reader, writer, reader_name, writer_name)
    checker.check(reader, writer, "$")
    return checker.errors


def _json_types(schema: dict[str, Any]) -> frozenset[str] | None:
    value = schema.get("type")
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(t for t in value if isinstance(t, str))
    return None


def _value_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _allowed_values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _accepts_type(reader_types: frozenset[str], type_name: str) -> bool:
    return type_name in reader_types or (type_name == "integer" and "number" in reader_types)


def _num(schema: dict[str, Any], key: str) -> float | None:
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _JsonChecker:
    def __init__(self, label: str, reader_root: Any, writer_root: Any, reader_name: str, writer_name: str):
        self.label = label
        self.roots = {"reader": reader_root, "writer": writer_root}
        self.reader_name = reader_name
        self.writer_name = writer_name
        self.errors: list[str] = []
        self._active: set[tuple[int, int]] = set()

    def error(self, path: str, detail: str) -> None:
        self.errors.append(f"{self.label} incompatible at '{path}': {detail}")

    def _resolve(self, schema: Any, side: str) -> Any:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
            ref: str = schema["$ref"]
            if not ref.startswith("#"):
                return True  # remote reference: not analysed
            target: Any = self.roots[side]
            for token in ref[1:].split("/")[1:] if ref != "#" else []:
                token = token.replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict) and token in target:
                    target = target[token]
                elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                    target = target[int(token)]
                else:
                    return True
            schema = target
            seen += 1
        return schema

    def _sub_errors(self, reader: Any, writer: Any, path: str) -> list[str]:
        saved = self.errors
        self.errors = []
        try:
            self.check(reader, writer, path)
            return self.errors
        finally:
            self.errors = saved

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader = self._resolve(reader, "reader")
        writer = self._resolve(writer, "writer")
        if writer is False or reader is True or reader == {}:
            return
        if reader is False:
            self.error(path, f"the {self.reader_name} accepts no value here")
            return
        if writer is True:
            writer = {}
        if not isinstance(reader, dict) or not isinstance(writer, dict):
            return
        key = (id(reader), id(writer))
        if key in self._active:  # recursive schemas: assume compatible on the cycle
            return
        self._active.add(key)
        try:
            self._check_dict(reader, writer, path)
        finally:
            self._active.discard(key)

    def _check_dict(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if canonical_json(reader) == canonical_json(writer):
            return
        if self._check_alternatives(reader, writer, path):
            return
        for member in reader.get("allOf") or []:
            self.check(member, writer, path)

        writer_values = _allowed_values(writer)
        reader_types = _json_types(reader)
        writer_types = _json_types(writer)
        if writer_types is None and writer_values is not None:
            writer_types = frozenset(_value_type(v) for v in writer_values)
        effective = writer_types if writer_types is not None else _ALL_JSON_TYPES
        if reader_types is not None:
            lost = sorted(t for t in effective if not _accepts_type(reader_types, t))
            if lost:
                if writer_types is None:
                    self.error(
                        path,
                        f"type narrowed: the {self.writer_name} accepts any type, the {self.reader_name} "
                        f"only {', '.join(sorted(reader_types))}",
                    )
                else:
                    self.error(
                        path,
                        f"type changed: the {self.writer_name} allows {', '.join(lost)}, the "
                        f"{self.reader_name} accepts only {', '.join(sorted(reader_types))}",
                    )
            effective = frozenset(t for t in effective if _accepts_type(reader_types, t))

        reader_values = _allowed_values(reader)
        if reader_values is not None:
            if writer_values is None:
                self.error(
                    path,
                    f"the {self.reader_name} restricts values to {reader_values!r}, the "
                    f"{self.writer_name} does not",
                )
            else:
                allowed = {canonical_json(v) for v in reader_values}
                for value in writer_values:
                    if canonical_json(value) not in allowed:
                        self.error(
                            path,
                            f"value {value!r} allowed by the {self.writer_name} is rejected by the "
                            f"{self.reader_name} (enum value removed)",
                        )
        if writer_values is not None:
            return  # the writer's finite value set was checked above; structure follows from it

        if effective & {"number", "integer"}:
            self._check_numbers(reader, writer, path)
        if "string" in effective:
            self._check_bounds(reader, writer, path, "minLength", "maxLength", "string length")
            for keyword in ("pattern", "format"):
                if keyword in reader and reader.get(keyword) != writer.get(keyword):
                    self.error(
                        path,
                        f"{keyword} {reader[keyword]!r} of the {self.reader_name} is not "
                        f"guaranteed by the {self.writer_name} ({writer.get(keyword)!r})",
                    )
        if "array" in effective:
            self._check_array(reader, writer, path)
        if "object" in effective:
            self._check_object(reader, writer, path)

    def _check_alternatives(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> bool:
        reader_alts = _alternatives(reader)
        writer_alts = _alternatives(writer)
        if reader_alts is None and writer_alts is None:
            return False
        base_reader = {k: v for k, v in reader.items() if k not in ("anyOf", "oneOf")}
        base_writer = {k: v for k, v in writer.items() if k not in ("anyOf", "oneOf")}
        readers = [_merge(base_reader, alt) for alt in reader_alts] if reader_alts is not None else [reader]
        writers = [_merge(base_writer, alt) for alt in writer_alts] if writer_alts is not None else [writer]
        for index, candidate in enumerate(writers):
            failures = []
            for option in readers:
                sub = self._sub_errors(option, candidate, path)
                if not sub:
                    break
                failures.append(sub)
            else:
                where = f" (alternative {index + 1})" if writer_alts is not None else ""
                detail = "; ".join(failures[0]) if len(failures) == 1 else "no alternative matches"
                self.error(
                    path,
                    f"a value of the {self.writer_name}{where} is not accepted by any "
                    f"alternative of the {self.reader_name}: {detail}",
                )
        return True

    def _check_bounds(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str, low: str, high: str, what: str
    ) -> None:
        r_low, w_low = _num(reader, low), _num(writer, low)
        if r_low is not None and r_low > (w_low if w_low is not None else 0):
            self.error(path, f"{low} raised from {_fmt(w_low)} to {_fmt(r_low)} ({what} narrowed)")
        r_high, w_high = _num(reader, high), _num(writer, high)
        if r_high is not None and (w_high is None or r_high < w_high):
            self.error(path, f"{high} lowered from {_fmt(w_high)} to {_fmt(r_high)} ({what} narrowed)")

    def _check_numbers(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        for keyword in ("minimum", "exclusiveMinimum"):
            r, w = _num(reader, keyword), _num(writer, keyword)
            if r is not None and (w is None or w < r):
                self.error(path, f"{keyword} raised from {_fmt(w)} to {_fmt(r)} (range narrowed)")
        for keyword in ("maximum", "exclusiveMaximum"):
            r, w = _num(reader, keyword), _num(writer, keyword)
            if r is not None and (w is None or w > r):
                self.error(path, f"{keyword} lowered from {_fmt(w)} to {_fmt(r)} (range narrowed)")
        r_mult, w_mult = _num(reader, "multipleOf"), _num(writer, "multipleOf")
        if r_mult is not None and r_mult > 0:
            ratio = (w_mult / r_mult) if w_mult is not None else 0.5
            if not math.isclose(ratio, round(ratio)) or round(ratio) == 0:
                self.error(
                    path,
                    f"multipleOf {_fmt(r_mult)} of the {self.reader_name} does not divide the "
                    f"{self.writer_name}'s ({_fmt(w_mult)})",
                )

    def _check_array(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        self._check_bounds(reader, writer, path, "minItems", "maxItems", "array size")
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self.error(path, f"uniqueItems added by the {self.reader_name}")
        r_items, w_items = reader.get("items"), writer.get("items")
        if isinstance(r_items, dict | bool) and not isinstance(w_items, list):
            self.check(r_items, w_items if isinstance(w_items, dict | bool) else True, path + "[]")

    def _check_object(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        self._check_bounds(reader, writer, path, "minProperties", "maxProperties", "property count")
        r_props = _dict_keyword(reader, "properties")
        w_props = _dict_keyword(writer, "properties")
        r_required = _required(reader)
        w_required = _required(writer)
        for name in sorted(r_required - w_required):
            prop = r_props.get(name)
            if isinstance(prop, dict) and "default" in prop:
                continue
            if name in w_props:
                self.error(
                    path,
                    f"field '{name}' is optional in the {self.writer_name} but required by the "
                    f"{self.reader_name}",
                )
            else:
                self.error(
                    path,
                    f"field '{name}' is required by the {self.reader_name} (without a default) "
                    f"but absent from the {self.writer_name}",
                )
        r_additional = reader.get("additionalProperties", True)
        w_additional = writer.get("additionalProperties", True)
        r_patterns = _dict_keyword(reader, "patternProperties")
        for name in sorted(w_props):
            child = f"{path}.{name}"
            if name in r_props:
                self.check(r_props[name], w_props[name], child)
                continue
            matched = [schema for pattern, schema in r_patterns.items() if _search(pattern, name)]
            if matched:
                for schema in matched:
                    self.check(schema, w_props[name], child)
            elif r_additional is False:
                self.error(
                    path,
                    f"property '{name}' of the {self.writer_name} is not declared by the "
                    f"{self.reader_name}, which forbids additional properties",
                )
            elif isinstance(r_additional, dict):
                self.check(r_additional, w_props[name], child)
        if isinstance(w_additional, dict):
            for name in sorted(set(r_props) - set(w_props)):
                self.check(r_props[name], w_additional, f"{path}.{name}")
        if "additionalProperties" in writer and w_additional is not False:
            if r_additional is False:
                self.error(
                    path,
                    f"the {self.reader_name} forbids additional properties that the "
                    f"{self.writer_name} allows",
                )
            elif isinstance(r_additional, dict):
                self.check(r_additional, w_additional, path + ".*")


def _dict_keyword(schema: dict[str, Any], keyword: str) -> dict[str, Any]:
    value = schema.get(keyword)
    return value if isinstance(value, dict) else {}


def _alternatives(schema: dict[str, Any]) -> list[Any] | None:
    for keyword in ("anyOf", "oneOf"):
        value = schema.get(keyword)
        if isinstance(value, list) and value:
            return value
    return None


def _merge(base: dict[str, Any], alt: Any) -> Any:
    if not isinstance(alt, dict):
        return alt if base == {} else base
    if "$ref" in alt:
        return alt
    return {**base, **alt}


def _required(schema: dict[str, Any]) -> set[str]:
    value = schema.get("required")
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def _search(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _fmt(value: float | None) -> str:
    if value is None:
        return "unbounded"
    return str(int(value)) if value.is_integer() else str(value)


# ----------------------------------------------------------------------------------------------------- Avro

_AVRO_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_AVRO_PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def _check_avro(label: str, *, reader: Any, writer: Any, reader_name: str, writer_name: str) -> list[str]:
    checker = _AvroChecker(label, reader, writer, reader_name, writer_name)
    checker.match(reader, writer, "$")
    return checker.errors


def _avro_named(schema: Any, namespace: str, names: dict[str, Any]) -> None:
    """Collect named types (record/enum/fixed) by full name and by short name."""
    if isinstance(schema, list):
        for member in schema:
            _avro_named(member, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed") and isinstance(schema.get("name"), str):
        full = _full_name(schema["name"], schema.get("namespace") or namespace)
        names.setdefault(full, schema)
        names.setdefault(full.rsplit(".", 1)[-1], schema)
        namespace = full.rsplit(".", 1)[0] if "." in full else ""
        for fld in schema.get("fields") or []:
            if isinstance(fld, dict):
                _avro_named(fld.get("type"), namespace, names)
    elif kind == "array":
        _avro_named(schema.get("items"), namespace, names)
    elif kind == "map":
        _avro_named(schema.get("values"), namespace, names)
    elif isinstance(kind, dict | list):
        _avro_named(kind, namespace, names)


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _short(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1]


class _AvroChecker:
    def __init__(self, label: str, reader_root: Any, writer_root: Any, reader_name: str, writer_name: str):
        self.label = label
        self.reader_name = reader_name
        self.writer_name = writer_name
        self.names: dict[str, dict[str, Any]] = {"reader": {}, "writer": {}}
        _avro_named(reader_root, "", self.names["reader"])
        _avro_named(writer_root, "", self.names["writer"])
        self.errors: list[str] = []
        self._active: set[tuple[str, str]] = set()

    def error(self, path: str, detail: str) -> None:
        self.errors.append(f"{self.label} incompatible at '{path}': {detail}")

    def _resolve(self, schema: Any, side: str) -> Any:
        if isinstance(schema, str) and schema not in _AVRO_PRIMITIVES:
            return self.names[side].get(schema) or self.names[side].get(_short(schema)) or schema
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self._resolve(schema["type"], side)
        if (
            isinstance(schema, dict)
            and isinstance(schema.get("type"), str)
            and schema["type"] in _AVRO_PRIMITIVES
        ):
            return schema["type"]  # {"type": "long", "logicalType": ...} reads like its primitive
        if (
            isinstance(schema, dict)
            and isinstance(schema.get("type"), str)
            and schema["type"] not in ("record", "error", "enum", "fixed", "array", "map")
        ):
            return self._resolve(schema["type"], side)
        return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, str):
            return schema
        if isinstance(schema, dict):
            kind = schema.get("type")
            return "record" if kind == "error" else str(kind)
        return "?"

    def _sub_ok(self, reader: Any, writer: Any) -> bool:
        saved = self.errors
        self.errors = []
        try:
            self.match(reader, writer, "$")
            return not self.errors
        finally:
            self.errors = saved

    def match(self, reader: Any, writer: Any, path: str) -> None:
        reader = self._resolve(reader, "reader")
        writer = self._resolve(writer, "writer")
        r_kind, w_kind = self._kind(reader), self._kind(writer)
        if w_kind == "union":
            for member in writer:
                if r_kind == "union":
                    if not any(self._sub_ok(option, member) for option in reader):
                        self.error(
                            path,
                            f"union branch {self._describe(member, 'writer')} of the "
                            f"{self.writer_name} has no match in the {self.reader_name}'s union",
                        )
                else:
                    self.match(reader, member, path)
            return
        if r_kind == "union":
            if not any(self._sub_ok(option, writer) for option in reader):
                self.error(
                    path,
                    f"type {self._describe(writer, 'writer')} of the {self.writer_name} is not a "
                    f"branch of the {self.reader_name}'s union",
                )
            return
        if r_kind != w_kind:
            if r_kind in _AVRO_PROMOTIONS.get(w_kind, frozenset()):
                return
            self.error(
                path,
                f"type changed from {self._describe(writer, 'writer')} ({self.writer_name}) to "
                f"{self._describe(reader, 'reader')} ({self.reader_name})",
            )
            return
        if r_kind in _AVRO_PRIMITIVES:
            return
        if r_kind == "array":
            self.match(reader.get("items"), writer.get("items"), path + "[]")
        elif r_kind == "map":
            self.match(reader.get("values"), writer.get("values"), path + "{}")
        elif r_kind in ("record", "enum", "fixed"):
            self._match_named(reader, writer, path, r_kind)

    def _describe(self, schema: Any, side: str) -> str:
        schema = self._resolve(schema, side)
        if isinstance(schema, dict):
            name = schema.get("name")
            return f"{schema.get('type')} {name}" if name else str(schema.get("type"))
        if isinstance(schema, list):
            return "union"
        return str(schema)

    def _match_named(self, reader: dict[str, Any], writer: dict[str, Any], path: str, kind: str) -> None:
        r_name, w_name = _short(reader.get("name")), _short(writer.get("name"))
        aliases = {_short(a) for a in reader.get("aliases") or [] if isinstance(a, str)}
        if r_name != w_name and w_name not in aliases:
            self.error(
                path,
                f"{kind} name changed from {w_name} ({self.writer_name}) to {r_name} ({self.reader_name})",
            )
            return
        key = (r_name + "/" + str(id(reader)), w_name + "/" + str(id(writer)))
        if key in self._active:
            return
        self._active.add(key)
        try:
            if kind == "fixed":
                if reader.get("size") != writer.get("size"):
                    self.error(path, f"fixed size changed from {writer.get('size')} to {reader.get('size')}")
            elif kind == "enum":
                symbols = set(reader.get("symbols") or [])
                if "default" not in reader:
                    for symbol in writer.get("symbols") or []:
                        if symbol not in symbols:
                            self.error(
                                path,
                                f"enum symbol {symbol!r} of the {self.writer_name} is unknown to the "
                                f"{self.reader_name}, which has no enum default",
                            )
            else:
                self._match_fields(reader, writer, path)
        finally:
            self._active.discard(key)

    def _match_fields(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        writer_fields = {f.get("name"): f for f in writer.get("fields") or [] if isinstance(f, dict)}
        for fld in _dicts(reader.get("fields")):
            name = fld.get("name")
            candidates = [name, *(fld.get("aliases") or [])]
            source = next((writer_fields[c] for c in candidates if c in writer_fields), None)
            child = f"{path}.{name}"
            if source is not None:
                self.match(fld.get("type"), source.get("type"), child)
            elif "default" not in fld:
                self.errors.append(
                    f"{self.label} incompatible at '{path}': field '{name}' of the {self.reader_name} has no "
                    f"default and is absent from the {self.writer_name}"
                )


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item
