"""Shadow runs on pr_merged: the LLM coordinator serves real triggers, the script shadows
it as a dry run answered from each real run's recording, and `tandem shadow` reports
exactly where they differ, without the shadow touching Slack or GitHub."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import eventually, tandem
from pr_merged_fixtures import SETTINGS, Setup, webhook_trigger
from tandem.testing.pr_merged import webhook_conversation

# The script under shadow leaves pull requests closed without merging alone: it differs
# from the model exactly on the delivery for #102.
SKIP_CLOSED = (
    "        wanted = sorted({reactions[s] for u in pulls if (s := statuses[u]) in reactions})",
    "        wanted = sorted({reactions[s] for u in pulls if (s := statuses[u]) == 'merged'})",
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("shadow") / "project", start=False)
    folder = setup.project.root / "workflows" / "pr_merged"
    yaml = (folder / "workflow.yaml").read_text()
    yaml = yaml.replace("coordinator: script ", "coordinator: llm\nshadow: script ", 1)
    (folder / "workflow.yaml").write_text(yaml)
    script = (folder / "script.py").read_text()
    assert SKIP_CLOSED[0] in script
    (folder / "script.py").write_text(script.replace(*SKIP_CLOSED))
    setup.start()
    yield setup
    setup.close()


def test_shadow_reports_exactly_the_trigger_where_the_script_differs(setup: Setup) -> None:
    primaries = {}
    for number in (101, 102, 104):
        setup.slack.reset()  # each trigger meets the seeded channel, nothing reacted yet
        setup.model.add(*webhook_conversation(number, SETTINGS))
        record = setup.run(webhook_trigger(number, f"delivery-{number}"))
        assert record.status == "succeeded" and record.coordinator == "llm", record.error
        primaries[record.id] = number
        assert {r.name for r in setup.slack.reactions_added} == {"x" if number == 102 else "merged"}
    reactions = list(setup.slack.reactions_added)
    slack_calls, github_calls = len(setup.slack.calls), len(setup.github.calls)

    def shadows() -> list:
        found = setup.daemon.client.runs("pr_merged", "", 10, mode="shadow")
        return [s for s in found if s.plan_diff is not None]

    assert eventually(lambda: len(shadows()) == 3, within=60), setup.daemon.log
    assert {s.source_run for s in shadows()} == set(primaries)
    assert all(s.coordinator == "script" and s.status == "succeeded" for s in shadows())
    # No side effect, and no extra read: everything came from the recordings.
    assert setup.slack.reactions_added == reactions
    assert (len(setup.slack.calls), len(setup.github.calls)) == (slack_calls, github_calls)

    report = tandem(setup.project, "shadow", "pr_merged", "--json")
    assert report.returncode == 0, report.stderr
    result = json.loads(report.stdout)
    assert (result["agreed"], result["differed"], result["shadow_failed"]) == (2, 1, 0), tandem(
        setup.project, "shadow", "pr_merged"
    ).stdout
    [differed] = [r for r in result["shadows"] if r["verdict"] == "differed"]
    assert primaries[differed["primary"]] == 102
    missing = [e["recorded"] for e in differed["diff"] if e["kind"] == "missing"]
    assert missing == [
        {
            "tool": "slack.add_reaction",
            "arguments": {"channel": "eng", "ts": "1764460980.000400", "name": "x"},
        }
    ]
    assert all(e["kind"] == "same" for e in differed["diff"] if e["kind"] != "missing")
    # Tokens are counted apart: the shadow (a script) spent none; its primary did.
    assert differed["tokens"]["model_calls"] == 0
    text = tandem(setup.project, "shadow", "pr_merged").stdout
    assert "agreed 2, differed 1, shadow failed 0" in text
    assert '- slack.add_reaction(channel="eng", ts="1764460980.000400", name="x")' in text
