"""Tools are typed functions: schemas derived from signatures and docstrings, and a bad
signature refused at load with the plugin and function named."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel
from tandem_sdk import RunContext, tool
from tandem_sdk.errors import DefinitionError
from tandem_sdk.plugin import define_tool


class Address(BaseModel):
    street: str
    number: int


def test_schema_is_derived_from_signature_and_docstring() -> None:
    @tool(side_effects=False)
    def search(
        query: str,
        ctx: RunContext,
        limit: int = 10,
        kind: Literal["pr", "issue"] = "pr",
        where: Address | None = None,
    ) -> list[str]:
        """Search things.

        Longer explanation.

        Args:
            query: what to look for.
            limit: at most this many.
        """
        return [query] * limit

    definition = define_tool("gh", search)
    schema = definition.input_schema
    assert definition.name == "search"
    assert definition.description == "Search things.\n\nLonger explanation."
    assert definition.side_effects is False
    assert definition.context_parameter == "ctx"
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"] == {"type": "string", "description": "what to look for."}
    assert schema["properties"]["limit"]["default"] == 10
    assert schema["properties"]["kind"]["enum"] == ["pr", "issue"]
    assert "ctx" not in schema["properties"]
    assert schema["additionalProperties"] is False
    assert "$defs" in schema and "Address" in schema["$defs"]
    result = definition.invoke('{"query": "x", "limit": 2}', RunContext("r", "w"))
    assert result == ["x", "x"]


def test_tools_have_side_effects_unless_they_say_otherwise() -> None:
    @tool
    def poke() -> None:
        """Poke."""

    assert define_tool("p", poke).side_effects is True


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("def f(x) -> int:\n    '''Doc.'''\n    return 1\n", "has no type annotation"),
        ("def f(*args: int) -> int:\n    '''Doc.'''\n    return 1\n", "variadic"),
        ("def f(**kw: int) -> int:\n    '''Doc.'''\n    return 1\n", "variadic"),
        ("def f(x: int, /) -> int:\n    '''Doc.'''\n    return 1\n", "positional-only"),
        ("def f(x: int) -> int:\n    return 1\n", "needs a docstring"),
        ("async def f(x: int) -> int:\n    '''Doc.'''\n    return 1\n", "async def"),
        ("class C:\n    pass\ndef f(x: C) -> int:\n    '''Doc.'''\n    return 1\n", "JSON schema"),
    ],
)
def test_bad_signatures_fail_naming_plugin_and_function(source: str, reason: str) -> None:
    namespace: dict[str, object] = {}
    exec(source, namespace)
    with pytest.raises(DefinitionError) as caught:
        define_tool("myplugin", namespace["f"])  # type: ignore[arg-type]
    message = str(caught.value)
    assert "plugin 'myplugin'" in message and "function 'f'" in message
    assert reason in message


def test_bad_tool_name_is_refused() -> None:
    @tool(name="Bad__Name")
    def f() -> None:
        """Doc."""

    with pytest.raises(DefinitionError, match="lower_snake_case"):
        define_tool("p", f)


def test_plugin_server_exits_with_the_load_error(tmp_path: Path) -> None:
    module = tmp_path / "plugin.py"
    module.write_text(
        textwrap.dedent(
            """
            from tandem_sdk import tool

            @tool
            def broken(x) -> int:
                '''Doc.'''
                return 1
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tandem_sdk.plugin_server",
            "--name",
            "demo",
            "--module",
            str(module),
            "--socket",
            str(tmp_path / "s.sock"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    # At the def line (the source starts with a blank line, then the import and @tool).
    assert result.stderr == (
        f"{module}:5: function 'broken': parameter 'x' has no type annotation\n"
    )


def test_sdk_never_imports_the_host() -> None:
    code = textwrap.dedent(
        """
        import sys
        import tandem_sdk, tandem_sdk.runner, tandem_sdk.plugin_server, tandem_sdk.client
        import tandem_sdk.script, tandem_sdk.plugin
        leaked = sorted(m for m in sys.modules if m == "tandem" or m.startswith("tandem."))
        print(",".join(leaked))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
    sdk = Path(__file__).resolve().parents[2] / "sdk" / "tandem_sdk"
    for path in sdk.rglob("*.py"):
        text = path.read_text()
        assert "from tandem." not in text and "import tandem\n" not in text, path
