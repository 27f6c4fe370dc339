"""Tool names between Tandem and the Anthropic API: reversible and collision-free."""

from __future__ import annotations

import pytest
from tandem.llm.naming import API_NAME, UnmappableName, from_api_name, to_api_name


@pytest.mark.parametrize(
    ("tool", "api"),
    [
        ("slack.add_reaction", "slack__add_reaction"),
        ("files.read", "files__read"),
        ("my_plugin.get_v2", "my_plugin__get_v2"),
    ],
)
def test_round_trip(tool: str, api: str) -> None:
    assert to_api_name(tool) == api
    assert API_NAME.match(api)
    assert from_api_name(api) == tool


def test_distinct_tools_get_distinct_names() -> None:
    tools = ["a_b.c", "a.b_c", "ab.c", "a.bc", "a_b_c.d"]
    assert len({to_api_name(t) for t in tools}) == len(tools)


@pytest.mark.parametrize(
    "tool", ["noplugin", "a.b.c", ".x", "x.", "a__b.c", "a.b__c", "p." + "x" * 70, "sp ace.x"]
)
def test_unmappable_tool_names(tool: str) -> None:
    with pytest.raises(UnmappableName):
        to_api_name(tool)


@pytest.mark.parametrize("api", ["plain", "a__b__c", "__x", "x__", "a.b__c", ""])
def test_api_names_of_no_tool(api: str) -> None:
    with pytest.raises(UnmappableName):
        from_api_name(api)
