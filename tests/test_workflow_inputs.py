"""workflow.yaml `input_schema`: a manual or Control trigger's payload is checked against
it before any run is made, and `tandem workflows` shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from conftest import Daemon, Project, tandem
from tandem_sdk._pb import control_pb2

GREETS = """
def handler(trigger, tools, virtual_files, subagent):
    return "hello " + trigger["name"] + "!" * trigger.get("times", 1)
"""
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "times": {"type": "integer", "minimum": 1}},
    "required": ["name"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Daemon]]:
    project = Project(tmp_path_factory.mktemp("inputs") / "project")
    project.workflow("greets", script=GREETS, input_schema=SCHEMA)
    daemon = Daemon(project)
    try:
        yield project, daemon
    finally:
        daemon.close()


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("[1, 2]", "payload: [1, 2] is not of type 'object'"),
        ('{"name": 7}', "name: 7 is not of type 'string'"),
        ('{"name": "Ada", "times": 0}', "times: 0 is less than the minimum of 1"),
        ('{"nme": "Ada"}', "'name' is a required property"),
    ],
)
def test_a_payload_missing_the_schema_is_refused_before_any_run(
    served: tuple[Project, Daemon], payload: str, words: str
) -> None:
    project, daemon = served
    result = tandem(project, "run", "greets", "--payload", payload)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "does not match workflow greets's input_schema" in result.stderr
    assert words in result.stderr
    assert all(run.trigger != json.loads(payload) for run in daemon.client.runs("greets"))


def test_control_answers_invalid_argument(served: tuple[Project, Daemon]) -> None:
    _, daemon = served
    request = control_pb2.TriggerRequest(workflow="greets", payload_json='"Ada"')
    with pytest.raises(grpc.RpcError) as refused:
        daemon.client.stub.Trigger(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "payload: 'Ada' is not of type 'object'" in str(refused.value.details())


def test_a_payload_matching_the_schema_runs(served: tuple[Project, Daemon]) -> None:
    _, daemon = served
    record = daemon.run("greets", {"name": "Ada", "times": 2})
    assert record.status == "succeeded", record.error
    assert record.output == "hello Ada!!"


def test_tandem_workflows_shows_the_input(served: tuple[Project, Daemon]) -> None:
    project, _ = served
    listed = tandem(project, "workflows")
    assert "    input: {name: string, times: integer = null}" in listed.stdout
    as_json = json.loads(tandem(project, "workflows", "--json").stdout)
    assert as_json["workflows"][0]["input_schema"] == SCHEMA
