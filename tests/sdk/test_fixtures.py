"""tandem_sdk.testing: real scripts replayed against fixture files written into tmp_path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tandem_sdk.plan import PlannedCall
from tandem_sdk.testing import Fixture, assert_replays, load_fixture, replay_fixture

PR = "https://github.com/acme/app/pull/7"
OTHER_PR = "https://github.com/acme/app/pull/8"
SETTINGS = {"channel": "C1", "look_back": 5}


def call(
    tool: str, arguments: dict[str, Any], result: Any = None, **outcome: Any
) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments, **(outcome or {"result": result})}


GET_MESSAGES = call(
    "slack.get_messages",
    {"channel": "C1", "limit": 5},
    [{"ts": "1.0", "links": [PR]}],
)
PR_STATUS = call("github.pr_status", {"url": PR}, {"state": "merged"})
REACT = call("slack.add_reaction", {"channel": "C1", "ts": "1.0", "name": "merged"}, None)
RECORDED_OUTPUT = {"added": [{"ts": "1.0", "reaction": "merged"}]}


def write_fixture(folder: Path, calls: list[dict[str, Any]], **fields: Any) -> Path:
    document = {
        "fixture": 1,
        "run": "20261130-012918-335e9e",
        "workflow": "pr_merged",
        "workflow_version": "451bd11eef08fec2",
        "coordinator": "script",
        "status": "succeeded",
        "trigger": {"source": "manual"},
        "files": {"settings.json": json.dumps(SETTINGS)},
        "calls": calls,
        "subagent_calls": [],
        "output": None,
        "flagged": None,
        **fields,
    }
    path = folder / "pr_merged-20261130-012918-335e9e.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def write_script(folder: Path, source: str, name: str = "script.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


# The recorded run's own logic: read settings, list messages, check each PR, react.
PR_MERGED = """
    import json

    def handler(trigger, tools, virtual_files, subagent):
        settings = json.loads(virtual_files["settings.json"])
        channel, look_back = settings["channel"], settings["look_back"]
        messages = tools.slack.get_messages(channel=channel, limit=look_back)
        added = []
        for message in messages:
            for url in message["links"]:
                state = tools.github.pr_status(url=url)["state"]
                if state == "merged":
                    tools.slack.add_reaction(channel="C1", ts=message["ts"], name="merged")
                    added.append({"ts": message["ts"], "reaction": "merged"})
        return {"added": added}
"""


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    return write_fixture(tmp_path, [GET_MESSAGES, PR_STATUS, REACT], output=RECORDED_OUTPUT)


def test_a_script_making_the_recorded_calls_replays(tmp_path: Path, recorded: Path) -> None:
    run = assert_replays(write_script(tmp_path, PR_MERGED), recorded, strict_order=True)
    assert run.calls == [
        PlannedCall("slack.get_messages", {"channel": "C1", "limit": 5}),
        PlannedCall("github.pr_status", {"url": PR}),
        PlannedCall("slack.add_reaction", {"channel": "C1", "ts": "1.0", "name": "merged"}),
    ]
    assert run.output == RECORDED_OUTPUT
    assert run.error is None and run.unanswered == [] and run.flagged_repeated == []
    assert run.diff.summary() == "3 same"


def test_the_trigger_reaches_the_handler(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path, [], trigger={"payload": {"n": 3}}, output={"n": 3})
    script = write_script(tmp_path, "def handler(t, tools, vf, sub):\n    return t['payload']\n")
    assert assert_replays(script, fixture).output == {"n": 3}


def test_a_changed_argument_fails_with_the_diff(tmp_path: Path, recorded: Path) -> None:
    script = write_script(tmp_path, PR_MERGED.replace('name="merged"', 'name="tada"'))
    with pytest.raises(AssertionError) as failed:
        assert_replays(script, recorded)
    message = str(failed.value)
    assert "script.py does not replay pr_merged-20261130-012918-335e9e.json" in message
    assert '~ slack.add_reaction(channel="C1", ts="1.0", name="merged")' in message
    assert 'now slack.add_reaction(channel="C1", ts="1.0", name="tada")' in message
    assert "2 same, 1 changed" in message
    # the changed call was not recorded: the script got not_recorded, and the report says so
    assert "calls the recording could not answer" in message
    assert (
        "the script raised tandem_sdk.errors.ToolError: slack.add_reaction: not_recorded:"
        in message
    )


def test_an_extra_call_fails(tmp_path: Path, recorded: Path) -> None:
    source = PR_MERGED.replace(
        "return {", "tools.slack.post_message(channel='C1', text='done')\n        return {"
    )
    with pytest.raises(AssertionError) as failed:
        assert_replays(write_script(tmp_path, source), recorded)
    assert '+ slack.post_message(channel="C1", text="done")' in str(failed.value)
    assert "3 same, 1 added" in str(failed.value)


def test_a_missing_call_fails_and_shows_both_outputs(tmp_path: Path, recorded: Path) -> None:
    source = PR_MERGED.replace('if state == "merged":', 'if state == "open":')
    with pytest.raises(AssertionError) as failed:
        assert_replays(write_script(tmp_path, source), recorded)
    message = str(failed.value)
    assert '- slack.add_reaction(channel="C1", ts="1.0", name="merged")' in message
    assert "2 same, 1 missing" in message
    assert "its output differs from the recorded output" in message
    recorded_part, replayed_part = message.split("output, recorded:")[1].split("output, replayed:")
    assert '"reaction": "merged"' in recorded_part
    assert '"added": []' in replayed_part


def test_a_models_recording_is_not_held_to_its_prose_output(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path, [], output="Added 2 reactions.", coordinator="llm")
    script = write_script(tmp_path, "def handler(t, tools, vf, sub):\n    return {'n': 2}\n")
    assert assert_replays(script, fixture).output == {"n": 2}
    with pytest.raises(AssertionError, match="its output differs"):
        assert_replays(script, fixture, check_output=True)


def test_check_output_false_ignores_the_output(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path, [], output={"n": 1})
    script = write_script(tmp_path, "def handler(t, tools, vf, sub):\n    return {'n': 2}\n")
    with pytest.raises(AssertionError, match="its output differs"):
        assert_replays(script, fixture)
    assert assert_replays(script, fixture, check_output=False).output == {"n": 2}


def test_output_compares_as_json_so_true_is_not_one(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path, [], output={"ok": 1, "pair": [1, 2]})
    script = write_script(tmp_path, "def handler(t, tools, vf, sub):\n    return {'ok': True}\n")
    with pytest.raises(AssertionError, match="its output differs"):
        assert_replays(script, fixture)
    tuples = "def handler(t, tools, vf, sub):\n    return {'ok': 1, 'pair': (1, 2)}\n"
    assert_replays(write_script(tmp_path, tuples, "tuples.py"), fixture)


def test_a_reordering_agrees_unless_order_is_strict(tmp_path: Path) -> None:
    first = call("github.pr_status", {"url": PR}, {"state": "merged"})
    second = call("github.pr_status", {"url": OTHER_PR}, {"state": "open"})
    fixture = write_fixture(tmp_path, [first, second], output=["merged", "open"])
    script = write_script(
        tmp_path,
        f"""
        def handler(trigger, tools, virtual_files, subagent):
            later = tools.github.pr_status(url="{OTHER_PR}")["state"]
            return [tools.github.pr_status(url="{PR}")["state"], later]
        """,
    )
    run = assert_replays(script, fixture)
    assert run.diff.count("moved") == 1
    with pytest.raises(AssertionError) as failed:
        assert_replays(script, fixture, strict_order=True)
    assert "    ↕ github.pr_status(url=" in str(failed.value)
    assert "1 same, 1 moved" in str(failed.value)


def test_a_recorded_tool_error_is_raised_again_with_its_type(tmp_path: Path) -> None:
    error = {"type": "not_found", "message": "no such pull request", "retryable": True}
    fixture = write_fixture(
        tmp_path, [call("github.pr_status", {"url": PR}, error=error)], output=None
    )
    script = write_script(
        tmp_path,
        f"""
        from tandem_sdk import errors

        def handler(trigger, tools, virtual_files, subagent):
            try:
                tools.github.pr_status(url="{PR}")
            except errors.ToolError as error:
                return [error.tool, error.type, error.reason, error.retryable]
        """,
    )
    run = replay_fixture(script, fixture)
    assert run.output == ["github.pr_status", "not_found", "no such pull request", True]
    assert run.unanswered == []


def test_repeated_identical_calls_take_the_recorded_answers_in_order(tmp_path: Path) -> None:
    tick = {"key": "n"}
    fixture = write_fixture(
        tmp_path, [call("state.increment", tick, 1), call("state.increment", tick, 2)]
    )
    script = write_script(
        tmp_path,
        """
        from tandem_sdk import errors

        def handler(trigger, tools, virtual_files, subagent):
            seen = [tools.state.increment(key="n"), tools.state.increment(key="n")]
            try:
                tools.state.increment(key="n")
            except errors.ToolError as error:
                seen.append([error.type, error.reason])
            return seen
        """,
    )
    run = replay_fixture(script, fixture)
    assert run.output[:2] == [1, 2]
    assert run.output[2][0] == "not_recorded"
    assert "used up" in run.output[2][1]
    assert run.unanswered == [PlannedCall("state.increment", tick)]
    assert run.diff.summary() == "2 same, 1 added"


def test_an_unrecorded_call_is_a_not_recorded_tool_error_the_script_can_catch(
    tmp_path: Path,
) -> None:
    fixture = write_fixture(tmp_path, [PR_STATUS])
    script = write_script(
        tmp_path,
        f"""
        from tandem_sdk.errors import ToolError

        def handler(trigger, tools, virtual_files, subagent):
            try:
                return tools.call("github.pr_status", {{"url": "{OTHER_PR}"}})
            except ToolError as error:
                return {{"type": error.type, "message": str(error)}}
        """,
    )
    run = replay_fixture(script, fixture)
    assert run.error is None
    assert run.output["type"] == "not_recorded"
    assert f'github.pr_status(url="{OTHER_PR}")' in run.output["message"]
    assert "pr_merged-20261130-012918-335e9e.json" in run.output["message"]
    assert run.unanswered == [PlannedCall("github.pr_status", {"url": OTHER_PR})]


def test_a_result_over_the_cap_is_result_not_recorded(tmp_path: Path) -> None:
    big = call("big.thing", {"id": 1}, result_over_cap=2_000_000)
    fixture = write_fixture(tmp_path, [big])
    script = write_script(
        tmp_path,
        """
        from tandem_sdk.errors import ToolError

        def handler(trigger, tools, virtual_files, subagent):
            try:
                tools.big.thing(id=1)
            except ToolError as error:
                return [error.type, error.reason]
        """,
    )
    run = replay_fixture(script, fixture)
    assert run.output[0] == "result_not_recorded"
    assert "big.thing(id=1)" in run.output[1] and "2000000 bytes" in run.output[1]
    assert run.unanswered == []  # it was recorded, only its result was not


def test_virtual_files_come_from_the_fixture(tmp_path: Path) -> None:
    fixture = write_fixture(
        tmp_path, [], files={"settings.json": "{}", "team/people.md": "ann\nbob\n"}
    )
    script = write_script(
        tmp_path,
        """
        from tandem_sdk.errors import NotFound

        def handler(trigger, tools, virtual_files, subagent):
            try:
                virtual_files["missing.md"]
            except NotFound as error:
                missing = error.message
            return {
                "paths": list(virtual_files),
                "people": virtual_files["./team/people.md"].split(),
                "by_tool": tools.files.read(path="settings.json"),
                "listed": tools.call("files.list"),
                "missing": missing,
            }
        """,
    )
    run = replay_fixture(script, fixture)
    assert run.error is None, run.error
    assert run.output["paths"] == ["settings.json", "team/people.md"]
    assert run.output["people"] == ["ann", "bob"]
    assert run.output["by_tool"] == "{}"
    assert run.output["listed"] == ["settings.json", "team/people.md"]
    assert "'missing.md'" in run.output["missing"]
    assert run.calls == []  # reads of the workflow's own files are not part of the plan


def test_subagent_calls_are_answered_from_the_recording(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"tone": {"type": "string"}}}
    subagent_calls = [
        {
            "request": {
                "prompt": "Classify",
                "input": {"items": [1, 2]},
                "schema": schema,
                "tools": ["slack.get_messages"],
                "model": None,
            },
            "text": '{"tone": "calm"}',
            "output": {"tone": "calm"},
        },
        {
            "request": {"prompt": "Summarise", "input": None, "schema": None, "tools": []},
            "text": "all quiet",
            "output": None,
        },
        {
            "request": {"prompt": "Summarise", "input": None, "schema": None, "tools": []},
            "error": "the model refused",
        },
    ]
    fixture = write_fixture(tmp_path, [], subagent_calls=subagent_calls)
    script = write_script(
        tmp_path,
        f"""
        from tandem_sdk.errors import SubagentError

        def handler(trigger, tools, virtual_files, subagent):
            answers = [
                # a tuple input and tools are recorded as lists, as the host records them
                subagent("Classify", input={{"items": (1, 2)}}, schema={schema!r},
                         tools=("slack.get_messages",), model=""),
                subagent("Summarise"),
            ]
            for kwargs in ({{}}, {{"input": "other"}}, {{"prompt": "Unknown"}}):
                try:
                    subagent(**{{"prompt": "Summarise", **kwargs}})
                except SubagentError as error:
                    answers.append(error.message)
            return answers
        """,
    )
    run = replay_fixture(script, fixture)
    assert run.error is None, run.error
    tone, text, refused, other_input, unknown = run.output
    assert tone == {"tone": "calm"} and text == "all quiet"
    assert refused == "the model refused"
    assert "another input" in other_input and "'Summarise'" in other_input
    assert "no recorded subagent call has this prompt" in unknown and "'Unknown'" in unknown


def test_a_flagged_fixture_fails_while_the_script_repeats_the_flagged_call(
    tmp_path: Path,
) -> None:
    open_pr = call("github.pr_status", {"url": PR}, {"state": "open"})
    wrong = call("slack.add_reaction", {"channel": "C1", "ts": "1.0", "name": "merged"}, None)
    fixture = write_fixture(
        tmp_path,
        [GET_MESSAGES, open_pr, wrong],
        output=RECORDED_OUTPUT,
        flagged={"reason": "reacted to an open PR", "calls": [2]},
    )
    buggy = write_script(tmp_path, PR_MERGED.replace('state == "merged"', "state"), "buggy.py")
    with pytest.raises(AssertionError) as failed:
        assert_replays(buggy, fixture)
    message = str(failed.value)
    assert "it made 1 flagged call(s) again" in message
    assert "flagged calls made again (flagged: reacted to an open PR):" in message
    assert 'slack.add_reaction(channel="C1", ts="1.0", name="merged")' in message
    assert replay_fixture(buggy, fixture).flagged_repeated == [
        PlannedCall("slack.add_reaction", {"channel": "C1", "ts": "1.0", "name": "merged"})
    ]

    fixed = write_script(tmp_path, PR_MERGED, "fixed.py")
    run = assert_replays(fixed, fixture)  # the output differs from the recorded (wrong) one
    assert run.flagged_repeated == [] and run.output == {"added": []}


def test_a_flagged_fixture_still_expects_the_other_recorded_calls(tmp_path: Path) -> None:
    fixture = write_fixture(
        tmp_path, [GET_MESSAGES, PR_STATUS, REACT], flagged={"reason": "wrong", "calls": [2]}
    )
    lazy = write_script(tmp_path, "def handler(t, tools, vf, sub):\n    return None\n")
    with pytest.raises(AssertionError) as failed:
        assert_replays(lazy, fixture)
    assert "· slack.add_reaction" in str(failed.value)
    assert "2 missing, 1 flagged" in str(failed.value)


OPEN_PR = call("github.pr_status", {"url": PR}, {"state": "open"})
REACTION = 'slack.add_reaction(channel="C1", ts="1.0", name="merged")'


def test_leaving_out_a_flagged_call_agrees_and_the_diff_says_so(tmp_path: Path) -> None:
    fixture = write_fixture(
        tmp_path, [GET_MESSAGES, OPEN_PR, REACT], flagged={"reason": "open PR", "calls": [2]}
    )
    run = assert_replays(write_script(tmp_path, PR_MERGED), fixture)
    assert run.diff.agrees(strict_order=True)
    assert run.diff.summary() == "2 same, 1 flagged"
    assert run.diff.lines()[-1] == f"· {REACTION}  (flagged call, not repeated)"


def test_a_call_a_person_denied_is_a_flagged_call(tmp_path: Path) -> None:
    denied = call(
        "slack.add_reaction",
        {"channel": "C1", "ts": "1.0", "name": "merged"},
        error={"type": "denied", "message": "a person denied this call: open PR"},
    )
    fixture = write_fixture(tmp_path, [GET_MESSAGES, OPEN_PR, denied])
    run = assert_replays(write_script(tmp_path, PR_MERGED), fixture)
    assert run.diff.summary() == "2 same, 1 flagged"
    assert run.diff.lines()[-1] == f"· {REACTION}  (flagged call, not repeated)"

    buggy = write_script(tmp_path, PR_MERGED.replace('state == "merged"', "state"), "buggy.py")
    with pytest.raises(AssertionError) as failed:
        assert_replays(buggy, fixture)
    assert "it made 1 flagged call(s) again" in str(failed.value)
    assert "(flagged: denied in an approval)" in str(failed.value)
    assert f"! {REACTION}  (flagged call, made again)" in str(failed.value)


def test_the_handlers_exception_is_kept_with_its_traceback(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path, [])
    script = write_script(
        tmp_path, "def handler(t, tools, vf, sub):\n    raise KeyError('channel')\n"
    )
    run = replay_fixture(script, fixture)
    assert run.output is None
    assert run.error is not None
    assert f'File "{script}", line 2, in handler' in run.error
    assert run.error.rstrip().endswith("KeyError: 'channel'")
    with pytest.raises(AssertionError) as failed:
        assert_replays(script, fixture)
    assert "the script raised KeyError: 'channel'" in str(failed.value)
    assert "the script's traceback:" in str(failed.value)


def test_an_output_that_is_not_json_is_an_error(tmp_path: Path) -> None:
    script = write_script(tmp_path, "def handler(t, tools, vf, sub):\n    return {1, 2}\n")
    run = replay_fixture(script, write_fixture(tmp_path, []))
    assert run.error is not None and "not JSON serializable" in run.error


def test_a_script_without_a_handler_fails_to_load(tmp_path: Path) -> None:
    script = write_script(tmp_path, "def main():\n    pass\n")
    with pytest.raises(TypeError, match="defines no handler"):
        replay_fixture(script, write_fixture(tmp_path, []))


def test_sibling_modules_import_and_each_workflow_gets_its_own(tmp_path: Path) -> None:
    outputs = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        write_script(folder, f"WORD = {name!r}\n", "words.py")
        source = "import words\n\ndef handler(t, tools, vf, sub):\n    return words.WORD\n"
        script = write_script(folder, source)
        outputs.append(replay_fixture(script, write_fixture(folder, [])).output)
    assert outputs == ["first", "second"]
    assert str(tmp_path / "first") not in sys.path and "words" not in sys.modules


def test_workflow_dir_names_where_siblings_live(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    write_script(tmp_path / "lib", "VALUE = 42\n", "shared_helper.py")
    source = (
        "import shared_helper\n\ndef handler(t, tools, vf, sub):\n    return shared_helper.VALUE\n"
    )
    script = write_script(tmp_path, source)
    run = replay_fixture(script, write_fixture(tmp_path, []), workflow_dir=tmp_path / "lib")
    assert run.output == 42


def test_log_calls_are_collected(tmp_path: Path) -> None:
    # No script proxy exposes log() yet; the client the proxies wrap does.
    source = """
        def handler(trigger, tools, virtual_files, subagent):
            tools._client.log("warning", "slow", {"ms": 900})
    """
    run = replay_fixture(write_script(tmp_path, source), write_fixture(tmp_path, []))
    assert run.logs == [{"level": "warning", "message": "slow", "fields": {"ms": 900}}]


def test_a_fifty_call_fixture_replays(tmp_path: Path) -> None:
    calls = [call("state.get", {"key": f"k{i}"}, i) for i in range(50)]
    fixture = write_fixture(tmp_path, calls, output=sum(range(50)))
    source = """
        def handler(trigger, tools, virtual_files, subagent):
            return sum(tools.state.get(key=f"k{i}") for i in range(50))
    """
    run = assert_replays(write_script(tmp_path, source), fixture, strict_order=True)
    assert len(run.calls) == 50 and run.diff.summary() == "50 same"


def test_a_loaded_fixture_mirrors_the_file(tmp_path: Path, recorded: Path) -> None:
    fixture = load_fixture(recorded)
    assert isinstance(fixture, Fixture)
    assert (fixture.run, fixture.workflow, fixture.coordinator) == (
        "20261130-012918-335e9e",
        "pr_merged",
        "script",
    )
    assert fixture.calls[1].tool == "github.pr_status"
    assert fixture.calls[1].result == {"state": "merged"}
    assert fixture.files == {"settings.json": json.dumps(SETTINGS)}
    assert assert_replays(write_script(tmp_path, PR_MERGED), fixture).output == RECORDED_OUTPUT


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"fixture": 2}, "fixture", "version 2 is unknown; this tandem_sdk reads 1"),
        ({"fixture": None}, "fixture", "expected integer, got null"),
        ({"calls": {}}, "calls", "expected array, got object"),
        ({"calls": [PR_STATUS, {**PR_STATUS, "arguments": []}]}, "calls[1].arguments", "array"),
        ({"calls": [{"arguments": {}, "result": 1}]}, "calls[0].tool", "missing"),
        ({"calls": [{**PR_STATUS, "error": {}}]}, "calls[0]", "needs one of result, error"),
        ({"calls": [call("a.b", {}, error={"type": "x"})]}, "calls[0].error.message", "missing"),
        ({"files": {"a.md": 3}}, "files.a.md", "expected string, got integer"),
        ({"flagged": {"reason": "r", "calls": [0]}}, "flagged.calls", "0 is not an index"),
        ({"subagent_calls": [{"request": {}}]}, "subagent_calls[0].request.prompt", "missing"),
    ],
)
def test_a_malformed_fixture_names_the_file_and_field(
    tmp_path: Path, change: dict[str, Any], field: str, problem: str
) -> None:
    path = write_fixture(tmp_path, [])
    document = json.loads(path.read_text())
    document.update(change)
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="^" + re.escape(str(path))) as failed:
        load_fixture(path)
    assert f": {field}: " in str(failed.value)
    assert problem in str(failed.value)


def test_a_fixture_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json: not a JSON document"):
        load_fixture(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match=r"broken\.json: \(top level\): expected object"):
        load_fixture(path)


def test_the_helper_imports_without_pytest() -> None:
    code = "import sys; sys.modules['pytest'] = None; import tandem_sdk.testing"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
