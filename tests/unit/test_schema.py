"""The typed-record checker behind the config: exact paths, strict types, tagged unions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

import pytest

from gateway.config.schema import Range, SchemaError, convert, json_schema


@dataclass(frozen=True, kw_only=True)
class Serial:
    TYPE: ClassVar[str] = "serial"
    port: str
    baud: Literal[9600, 115200] = 9600


@dataclass(frozen=True, kw_only=True)
class Ble:
    TYPE: ClassVar[str] = "ble"
    adapter: str = "hci0"


@dataclass(frozen=True, kw_only=True)
class Root:
    interval_s: Annotated[float, Range(gt=0, le=60)] = 1.0
    count: Annotated[int, Range(ge=1)] = 1
    enabled: bool = True
    name: str | None = None
    sources: list[Serial | Ble] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.name == "bad":
            raise ValueError("name: must not be 'bad'")


def test_a_valid_document_becomes_typed_records() -> None:
    root = convert(
        {"interval_s": 2, "sources": [{"type": "ble"}, {"type": "serial", "port": "/dev/x"}]}, Root
    )
    assert root == Root(interval_s=2.0, sources=[Ble(), Serial(port="/dev/x")])
    assert isinstance(root.interval_s, float)


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"count": True}, "count", "expected an integer, got a boolean"),
        ({"count": 1.5}, "count", "expected an integer, got a number"),
        ({"count": 0}, "count", "expected a number >= 1, got 0"),
        ({"interval_s": 61}, "interval_s", "expected a number <= 60"),
        ({"enabled": "yes"}, "enabled", "expected true or false, got a string"),
        ({"colour": 1}, "colour", "unknown key"),
        ({"sources": [{"type": "zigbee"}]}, "sources[0].type", "expected one of 'serial', 'ble'"),
        ({"sources": [{"type": "serial"}]}, "sources[0].port", "missing required key"),
        (
            {"sources": [{"type": "serial", "port": "p", "baud": 9601}]},
            "sources[0].baud",
            "expected one of 9600, 115200, got 9601",
        ),
        ({"sources": [{"type": "ble", "adapter": 0}]}, "sources[0].adapter", "expected a string"),
        ({"name": "bad"}, "name", "must not be 'bad'"),
    ],
)
def test_every_problem_names_its_path(document: dict[str, object], path: str, message: str) -> None:
    with pytest.raises(SchemaError) as error:
        convert(document, Root)
    assert error.value.path == path
    assert message in error.value.detail


def test_json_schema_mirrors_the_types() -> None:
    schema = json_schema(Root)
    root = schema["$defs"]["Root"]
    assert root["additionalProperties"] is False
    assert root["properties"]["interval_s"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 60,
        "default": 1.0,
    }
    assert root["properties"]["sources"]["items"] == {
        "oneOf": [{"$ref": "#/$defs/Serial"}, {"$ref": "#/$defs/Ble"}]
    }
    assert schema["$defs"]["Serial"]["properties"]["type"] == {
        "const": "serial",
        "description": 'Selects this kind: "serial".',
    }
    assert schema["$defs"]["Serial"]["required"] == ["type", "port"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Documented:
    TYPE: ClassVar[str] = "documented"
    port: str
    """Where the sensor is,
    across two lines."""
    baud: int = 9600  # a comment is not a description
    silent: bool = False


def test_attribute_docstrings_become_property_descriptions() -> None:
    properties = json_schema(Documented)["$defs"]["Documented"]["properties"]
    assert properties["port"] == {
        "description": "Where the sensor is, across two lines.",
        "type": "string",
    }
    assert "description" not in properties["baud"]
    assert "description" not in properties["silent"]
    assert properties["type"]["description"] == 'Selects this kind: "documented".'
