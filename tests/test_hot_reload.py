"""Workflow hot reload touches only what changed: a save reloads that workflow alone, a
new folder appears and a removed one goes, with the daemon running."""

from __future__ import annotations

import json
import shutil

from conftest import Project, eventually, tandem

SCRIPT = """
def handler(trigger, tools, virtual_files, subagent):
    return "{word}"
"""


def _versions(project: Project) -> dict[str, str]:
    listed = json.loads(tandem(project, "workflows", "--json").stdout)["workflows"]
    return {w["name"]: w["version"] for w in listed}


def test_a_save_reloads_only_its_workflow(project: Project, start_daemon) -> None:
    a = project.workflow("alpha", script=SCRIPT.format(word="a1"))
    project.workflow("beta", script=SCRIPT.format(word="b1"))
    daemon = start_daemon(project, reload=True)
    before = _versions(project)
    (a / "script.py").write_text(SCRIPT.format(word="a2"))
    assert eventually(lambda: daemon.run("alpha").output == "a2"), daemon.log
    assert any("workflows reloaded (alpha)" in line for line in daemon.log), daemon.log
    after = _versions(project)
    assert after["beta"] == before["beta"] and after["alpha"] != before["alpha"]

    project.workflow("gamma", script=SCRIPT.format(word="g"))
    assert eventually(lambda: "gamma" in _versions(project)), daemon.log
    assert daemon.run("gamma").output == "g"
    shutil.rmtree(project.root / "workflows" / "gamma")
    assert eventually(lambda: "gamma" not in _versions(project)), daemon.log
