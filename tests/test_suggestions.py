"""A misspelled tool or workflow name is an error that names the close ones: for a
script, for the CLI's commands about a workflow, and through Control."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Daemon, Project, tandem

MISSPELLS = """
from tandem_sdk import NotFound

def handler(trigger, tools, virtual_files, subagent):
    try:
        tools.state.incremnt(key="n")
    except NotFound as error:
        return str(error)
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = Project(tmp_path_factory.mktemp("suggest") / "project")
    project.workflow("hello", tools=["state.*"], script=MISSPELLS)
    daemon = Daemon(project)
    try:
        yield project
    finally:
        daemon.close()


def test_a_script_calling_a_misspelled_tool_is_told_the_close_one(served: Project) -> None:
    result = tandem(served, "run", "hello", "--json")
    assert result.returncode == 0, result.stderr
    assert "did you mean state.increment?" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["run", "helo"],
        ["runs", "--workflow", "helo"],
        ["shadow", "helo"],
        ["stats", "helo"],
        ["tools", "helo"],
    ],
    ids=lambda c: c[0],
)
def test_an_unknown_workflow_is_a_usage_error_naming_the_close_one(
    served: Project, command: list[str]
) -> None:
    result = tandem(served, *command)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "no workflow named 'helo' (did you mean hello?)" in result.stderr
