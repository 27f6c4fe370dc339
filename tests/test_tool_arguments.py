"""The host's check of a tool call's arguments: compiled for speed where that changes no
verdict, jsonschema's verdict and words everywhere else, and nothing ever fetched."""

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
        "channel": {"type": "string", "minLength": 2},
        "n": {"type": "integer", "maximum": 10},
        "ratio": {"type": "number"},
    },
    "required": ["channel"],
    "additionalProperties": False,
}
CASES = [
    ('{"channel": "C123", "n": 2}', None),
    ('{"channel": "C123", "ratio": NaN}', None),  # the fast check refuses, jsonschema not
    ('{"channel": "C", "n": 2}', "channel: 'C' is too short"),
    ('{"channel": "C1", "n": "2"}', "n: '2' is not of type 'integer'"),
    ('{"channel": "C1", "n": 11}', "n: 11 is greater than the maximum of 10"),
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
    assert tool._arguments._check is not None  # the compiled check answers first
    if refusal is None:
        assert tool.parse_arguments(arguments).keys() == json.loads(arguments).keys()
    else:
        with pytest.raises(InvalidArguments, match=re.escape(refusal)):
            tool.parse_arguments(arguments)


@pytest.mark.parametrize(
    ("keyword", "accepted", "refused"),
    [
        # Python's \w, \d and \s are Unicode classes; ECMA-262's are ASCII (\s: Unicode).
        ({"pattern": r"^\w+$"}, '"café"', '"a b"'),
        ({"pattern": r"^\d+$"}, '"٣"', '"3a"'),
        ({"pattern": r"^\S+$"}, '"ab"', '"a\\u001cb"'),
        ({"multipleOf": 0.01}, "0.25", "0.07"),  # 0.07 / 0.01 is not whole in floats
    ],
)
def test_where_the_two_read_a_schema_differently_jsonschema_alone_decides(
    keyword: dict[str, object], accepted: str, refused: str
) -> None:
    schema = {"type": "object", "properties": {"v": {"type": ["string", "number"], **keyword}}}
    tool = _tool(schema)
    assert tool._arguments._check is None
    assert tool.parse_arguments(f'{{"v": {accepted}}}') == {"v": json.loads(accepted)}
    with pytest.raises(InvalidArguments, match=r"^slack\.post: v: "):
        tool.parse_arguments(f'{{"v": {refused}}}')


def test_a_reference_outside_the_schema_is_refused_when_the_tool_is_described() -> None:
    schema = {"type": "object", "properties": {"v": {"$ref": "https://schemas.invalid/v"}}}
    with pytest.raises(ValueError, match="never fetches a schema: put what it names under"):
        _tool(schema)
    local = {
        "type": "object",
        "$defs": {"v": {"type": "integer"}},
        "properties": {"v": {"$ref": "#/$defs/v"}},
    }
    tool = _tool(local)
    assert tool._arguments._check is not None
    with pytest.raises(InvalidArguments, match="not of type 'integer'"):
        tool.parse_arguments('{"v": "x"}')
