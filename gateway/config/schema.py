"""Typed records from plain data (TOML, JSON): frozen dataclasses checked field by field.

Why not a library: the candidates either cost several MB of RSS on a Pi Zero 2 W (pydantic) or
have no armv7l wheels (msgspec); this is the small subset the config needs, with errors that
name the exact path, unknown keys refused, and a JSON Schema generated from the same types.

Supported annotations: str, int, float, bool, Literal[...], X | None, list[X], dict[str, X]
(a table of names), a dataclass, a
union of dataclasses told apart by a `type` key (each has `TYPE: ClassVar[str]`), and
Annotated[int | float, Range(...)].

A field is documented by the string literal right after it in the class body (an attribute
docstring, as Sphinx reads it); `field_docs` finds them in the source, and the JSON Schema
carries them as each property's description.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Annotated, Any, Literal, TypeVar, Union

T = TypeVar("T")

MAX_STRING_CHARS = 4096
"""Longest string a config holds (paths, names, URLs)."""
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class SchemaError(ValueError):
    """`path` is where in the document (`sources[0].driver`); the message says what was expected."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds of an Annotated number; each bound set is checked."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def check(self, value: float) -> str | None:
        """What is wrong with `value` (for the error message); None if it is within bounds."""
        for bound, ok, word in (
            (self.ge, value >= (self.ge or 0), ">="),
            (self.gt, value > (self.gt or 0), ">"),
            (self.le, value <= (self.le or 0), "<="),
            (self.lt, value < (self.lt or 0), "<"),
        ):
            if bound is not None and not ok:
                return f"expected a number {word} {bound:g}, got {value!r}"
        return None


_TYPE_NAMES: dict[object, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}
_JSON_TYPES: dict[object, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _variants(annotation: object) -> list[Any]:
    return [a for a in typing.get_args(annotation) if a is not type(None)]


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


@typing.overload
def convert(data: object, annotation: type[T], path: str = "") -> T: ...
@typing.overload
def convert(data: object, annotation: object, path: str = "") -> object: ...
def convert(data: object, annotation: object, path: str = "") -> object:
    """`data` checked against `annotation` and built; SchemaError at the first problem."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        value = convert(data, base, path)
        for extra in extras:
            problem = extra.check(value) if isinstance(extra, Range) else None
            if problem:
                raise SchemaError(problem, path=path)
        return value
    if _is_union(annotation):
        variants = _variants(annotation)
        if data is None and len(variants) < len(typing.get_args(annotation)):
            return None
        if all(dataclasses.is_dataclass(v) for v in variants) and len(variants) > 1:
            return _convert_tagged(data, variants, path)
        if len(variants) == 1:
            return convert(data, variants[0], path)
        raise TypeError(f"unsupported union {annotation!r}")
    if origin is Literal:
        choices = typing.get_args(annotation)
        if data not in choices or type(data) is not type(choices[0]):
            expected = ", ".join(repr(c) for c in choices)
            raise SchemaError(f"expected one of {expected}, got {data!r}", path=path)
        return data
    if origin is list:
        if not isinstance(data, list):
            raise SchemaError(f"expected an array, got {_describe(data)}", path=path)
        (item,) = typing.get_args(annotation)
        return [convert(v, item, _join(path, i)) for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise SchemaError(f"expected a table, got {_describe(data)}", path=path)
        value_type = typing.get_args(annotation)[1]
        for key in data:
            _check_text(str(key), _join(path, str(key)))
        return {str(k): convert(v, value_type, _join(path, str(k))) for k, v in data.items()}
    if dataclasses.is_dataclass(annotation):
        return _convert_record(data, annotation, path)  # type: ignore[arg-type]
    if annotation is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if annotation in _TYPE_NAMES:
        if type(data) is not annotation:
            raise SchemaError(
                f"expected {_TYPE_NAMES[annotation]}, got {_describe(data)}", path=path
            )
        if isinstance(data, str):
            _check_text(data, path)
        return data
    raise TypeError(f"unsupported annotation {annotation!r}")


def _check_text(text: str, path: str) -> None:
    """Strings reach file systems, topics and logs: no NUL, no unpaired surrogate (which JSON
    escapes can carry and nothing can encode), and a length a config never needs."""
    if len(text) > MAX_STRING_CHARS:
        raise SchemaError(f"expected at most {MAX_STRING_CHARS} characters", path=path)
    bad = _BAD_TEXT.search(text)
    if bad is not None:
        raise SchemaError(
            f"expected text without NUL or unpaired surrogates, got U+{ord(bad.group()):04X} "
            f"at offset {bad.start()}",
            path=path,
        )


def _convert_tagged(data: object, variants: list[Any], path: str) -> object:
    tags = {v.TYPE: v for v in variants}
    if not isinstance(data, dict):
        raise SchemaError(f"expected a table, got {_describe(data)}", path=path)
    tag = data.get("type")
    if tag not in tags:
        expected = ", ".join(repr(t) for t in tags)
        raise SchemaError(f"expected one of {expected}, got {tag!r}", path=_join(path, "type"))
    return _convert_record(data, tags[tag], path)


def _convert_record(data: object, cls: type[T], path: str) -> T:
    if not isinstance(data, dict):
        raise SchemaError(f"expected a table, got {_describe(data)}", path=path)
    tag = getattr(cls, "TYPE", None)
    if tag is not None:
        if data.get("type") != tag:
            raise SchemaError(
                f"expected one of {tag!r}, got {data.get('type')!r}", path=_join(path, "type")
            )
        data = {k: v for k, v in data.items() if k != "type"}
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise SchemaError(
                "unknown key (see config/gateway.example.toml for the keys there are)",
                path=_join(path, str(key)),
            )
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = convert(data[name], hints[name], _join(path, name))
        elif field.default is MISSING and field.default_factory is MISSING:
            raise SchemaError("missing required key", path=_join(path, name))
    try:
        return cls(**values)
    except ValueError as error:  # __post_init__ says "field: what was expected"
        field_name, sep, rest = str(error).partition(": ")
        if sep and all(
            part.isidentifier() or part.strip("[]").isdigit()
            for part in field_name.replace("[", ".[").split(".")
            if part
        ):
            raise SchemaError(rest, path=_join(path, field_name)) from None
        raise SchemaError(str(error), path=path) from None


def json_schema(root: type[Any]) -> dict[str, Any]:
    """A JSON Schema (2020-12) for documents that `convert(data, root)` accepts."""
    definitions: dict[str, Any] = {}
    reference = _schema(root, definitions)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **reference,
        "$defs": definitions,
    }


def _schema(annotation: object, definitions: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        schema = _schema(base, definitions)
        for extra in extras:
            if isinstance(extra, Range):
                for key, bound in (
                    ("minimum", extra.ge),
                    ("exclusiveMinimum", extra.gt),
                    ("maximum", extra.le),
                    ("exclusiveMaximum", extra.lt),
                ):
                    if bound is not None:
                        schema[key] = bound
        return schema
    if _is_union(annotation):
        variants = _variants(annotation)
        options = [_schema(v, definitions) for v in variants]
        if len(variants) < len(typing.get_args(annotation)):
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"oneOf": options}
    if origin is Literal:
        return {"enum": list(typing.get_args(annotation))}
    if origin is list:
        return {"type": "array", "items": _schema(typing.get_args(annotation)[0], definitions)}
    if origin is dict:
        value_schema = _schema(typing.get_args(annotation)[1], definitions)
        return {"type": "object", "additionalProperties": value_schema}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        name = annotation.__name__
        if name not in definitions:
            definitions[name] = {}  # placeholder against recursion
            definitions[name] = _record_schema(annotation, definitions)
        return {"$ref": f"#/$defs/{name}"}
    return {"type": _JSON_TYPES[annotation]}


def _record_schema(cls: type[Any], definitions: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    properties: dict[str, Any] = {}
    required = []
    if hasattr(cls, "TYPE"):
        properties["type"] = {"const": cls.TYPE}
        required.append("type")
    docs = field_docs(cls)
    if "type" in properties:
        properties["type"]["description"] = f'Selects this kind: "{cls.TYPE}".'
    for field in dataclasses.fields(cls):
        schema = _schema(hints[field.name], definitions)
        if field.name in docs:
            schema = {"description": docs[field.name], **schema}
        if field.default is not MISSING and isinstance(field.default, str | int | float | bool):
            schema = {**schema, "default": field.default}
        elif field.default is MISSING and field.default_factory is MISSING:
            required.append(field.name)
        properties[field.name] = schema
    schema = {
        "title": cls.__name__,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        schema["description"] = " ".join(cls.__doc__.split())
    return schema


def field_docs(cls: type[Any]) -> dict[str, str]:
    """Field name -> its attribute docstring, on one line; empty when the source is absent."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source: a frozen app, a class made at run time
        return {}
    (definition,) = ast.parse(source).body
    if not isinstance(definition, ast.ClassDef):
        return {}
    docs: dict[str, str] = {}
    for node, following in zip(definition.body, definition.body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs
