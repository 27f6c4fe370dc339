"""The host's check of a tool call's arguments: compiled for speed, with jsonschema's
words (and verdict) on every refusal, and the same answers when the compiled check cannot
take a schema."""

from __future__ import annotations

import json
import re

import pytest
from tandem.tools import HostTool
from tandem_sdk.annotations import ToolAnnotations
from tandem_sdk.errors import InvalidArguments

SCHEMA = {
    "type": "object",
    "properties": {
        "channel": {"type": "string", "pattern": "^C[A-Z0-9]+$"},
        "n": {"type": "integer"},
    },
    "required": ["channel"],
    "additionalProperties": False,
}
CASES = [
    ('{"channel": "C123", "n": 2}', None),
    ('{"channel": "C123"}', None),
    ('{"channel": "general"}', "channel: 'general' does not match '^C[A-Z0-9]+$'"),
    ('{"channel": "C1", "n": "2"}', "n: '2' is not of type 'integer'"),
    ('{"n": 2}', "arguments: 'channel' is a required property"),
    ('{"channel": "C1", "x": 1}', "Additional properties are not allowed ('x' was unexpected)"),
    ("[1]", "arguments must be a JSON object"),
    ("{", "arguments are not JSON"),
]


def _tool(schema: dict[str, object]) -> HostTool:
    return HostTool.create("slack.post", "slack", "Post.", schema, ToolAnnotations())


@pytest.mark.parametrize(("arguments", "refusal"), CASES)
def test_arguments_are_checked_and_refusals_named(arguments: str, refusal: str | None) -> None:
    tool = _tool(SCHEMA)
    assert tool._check is not None  # the compiled check is the one answering
    if refusal is None:
        assert tool.parse_arguments(arguments) == json.loads(arguments)
    else:
        with pytest.raises(InvalidArguments, match=re.escape(refusal)):
            tool.parse_arguments(arguments)


def test_a_schema_the_compiled_check_cannot_take_is_checked_by_jsonschema() -> None:
    # `\Z` is Python's end of string: jsonschema (Python's re) takes it, ECMA regex does not.
    schema = {**SCHEMA, "properties": {"channel": {"type": "string", "pattern": r"^C\d+\Z"}}}
    tool = _tool(schema)
    assert tool._check is None
    assert tool.parse_arguments('{"channel": "C12"}') == {"channel": "C12"}
    with pytest.raises(InvalidArguments, match="does not match"):
        tool.parse_arguments('{"channel": "C12x"}')
