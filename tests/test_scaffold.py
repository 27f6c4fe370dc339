"""`tandem new`: skeletons that pass `tandem check`, run, and pass their own tests as
written; bad or taken names are refused before anything is written.

The llm skeleton is checked and its tool scope listed, but not run: that needs a model.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, Project, tandem
from tandem.cli import new
from tandem.cli.common import UsageError
from tandem.config import builtin_plugins_dir

USES_PLUGIN = """
def handler(trigger, tools, virtual_files, subagent):
    first = tools.jotter.remember(key="k", text="a note")
    again = tools.jotter.remember(key="k", text="another")
    return {"first": first, "again": again, "note": tools.jotter.lookup(key="k")}
"""


def tandem_new(project: Project, *argv: str) -> int:
    """`tandem new ...` in this process, parsed by the command's own parser."""
    parser = argparse.ArgumentParser(prog="tandem")
    new.add_parser(parser.add_subparsers(dest="command", required=True))
    return new.cmd_new(project.config, parser.parse_args(["new", *argv]))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One project with a script workflow, an llm workflow and a plugin scaffolded, and a
    workflow of the test's own that uses the plugin."""
    project = Project(tmp_path_factory.mktemp("scaffold") / "project")
    assert tandem_new(project, "workflow", "greet") == 0
    assert tandem_new(project, "workflow", "ask", "--coordinator", "llm") == 0
    assert tandem_new(project, "plugin", "jotter") == 0
    project.workflow("uses_jotter", tools=["jotter.*"], script=USES_PLUGIN)
    return project


def test_the_skeletons_pass_check(made: Project) -> None:
    checked = tandem(made, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in ("greet", "ask", "uses_jotter"):
        assert f"ok     workflow {name}" in checked.stdout
    assert "0 error(s)" in checked.stdout


def test_the_script_skeleton_runs(made: Project) -> None:
    ran = tandem(made, "run", "greet", "--payload", '{"name": "Ada"}', "--json")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["status"] == "succeeded", record["error"]
    assert record["output"] == {"message": "Hello, Ada! This is greeting number 1.", "count": 1}


def test_the_skeleton_says_what_its_payload_looks_like(made: Project) -> None:
    listed = json.loads(tandem(made, "workflows", "--json").stdout)["workflows"]
    schemas = {w["name"]: w["input_schema"] for w in listed}
    assert schemas["greet"] == schemas["ask"]
    assert schemas["greet"]["properties"]["name"]["type"] == "string"
    refused = tandem(made, "run", "greet", "--payload", '{"nam": "Ada"}')
    assert refused.returncode == 2 and "input_schema" in refused.stderr, refused.stderr


def test_the_llm_skeleton_offers_its_tools(made: Project) -> None:
    # Running it needs a model key; `tandem check` above loaded it, prompt and all.
    listed = tandem(made, "tools", "ask", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "state.increment" in {tool["name"] for tool in json.loads(listed.stdout)}
    folder = made.root / "workflows" / "ask"
    assert sorted(p.name for p in folder.iterdir()) == ["files", "prompt.md", "workflow.yaml"]


def test_a_workflow_uses_the_new_plugins_tools(made: Project) -> None:
    ran = tandem(made, "run", "uses_jotter", "--json")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["status"] == "succeeded", record["error"]
    assert record["output"] == {"first": True, "again": False, "note": "a note"}


def test_the_generated_tests_pass_as_written(made: Project) -> None:
    tests = [
        made.root / "workflows" / "greet" / "tests",
        made.root / "plugins" / "jotter" / "tests",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, tests)],
        cwd=made.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_plain_pytest_collects_every_skeletons_tests_together(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each script workflow's test is tests/test_script.py, each plugin's
    # tests/test_plugin.py: a project made with `tandem new` passes plain `pytest` at its
    # root, with no configuration of the user's, whatever the workflows are called.
    names = ["alpha", "beta-two", "gamma_3"]
    printed = []
    for argv in [["workflow", name] for name in names] + [["plugin", "p1"], ["plugin", "p2"]]:
        assert tandem_new(project, *argv) == 0
        printed.append(capsys.readouterr().out)
    ini = project.root / "pytest.ini"
    assert str(ini) in printed[0] and all(str(ini) not in later for later in printed[1:])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in names:
        assert f"workflows/{name}/tests/test_script.py::test_" in result.stdout, result.stdout
    for name in ("p1", "p2"):
        assert f"plugins/{name}/tests/test_plugin.py::test_" in result.stdout, result.stdout
    assert "9 passed" in result.stdout, result.stdout


def test_a_projects_own_pytest_configuration_is_left_alone(project: Project) -> None:
    from tandem.scaffold import ensure_pytest_config

    pyproject = project.root / "pyproject.toml"
    pyproject.write_text('[project]\nname = "mine"\n')  # no pytest section: not pytest's file
    assert ensure_pytest_config(project.root).written
    (project.root / "pytest.ini").unlink()
    pyproject.write_text('[tool.pytest.ini_options]\naddopts = "-ra --import-mode=importlib"\n')
    kept = ensure_pytest_config(project.root)
    assert (kept.path, kept.written, kept.importlib, kept.note()) == (pyproject, False, True, None)
    assert not (project.root / "pytest.ini").exists()
    (project.root / "tox.ini").write_text("[pytest]\naddopts = -ra\n")
    pyproject.unlink()
    lacking = ensure_pytest_config(project.root)
    assert (lacking.path.name, lacking.written, lacking.importlib) == ("tox.ini", False, False)
    made = tandem(project, "new", "workflow", "greet")
    assert made.returncode == 0, made.stderr
    assert "tox.ini does not set --import-mode=importlib" in made.stderr
    assert (project.root / "tox.ini").read_text() == "[pytest]\naddopts = -ra\n"


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_the_skeletons_pass_the_repositorys_lint(made: Project, project: Project) -> None:
    # `make check` runs ruff over workflows/ and plugins/: a skeleton made here must pass,
    # with the longest names too (lines holding a name must stay under the line limit).
    longest = {"workflow": "w" * 64, "plugin": "p" * 32}
    for kind, name in longest.items():
        assert tandem_new(project, kind, name) == 0
    folders = [
        str(made.root / "workflows" / "greet"),
        str(made.root / "plugins" / "jotter"),
        str(project.root / "workflows" / longest["workflow"]),
        str(project.root / "plugins" / longest["plugin"]),
    ]
    config = ["--config", str(REPO / "pyproject.toml")]
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *config, *folders],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_what_is_written_and_what_to_try_next(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tandem_new(project, "workflow", "greet") == 0
    printed = capsys.readouterr().out
    folder = project.root / "workflows" / "greet"
    for path in ("workflow.yaml", "script.py", "files/message.md", "tests/test_script.py"):
        assert str(folder / path) in printed
    assert "tandem check" in printed
    assert "tandem run greet --payload" in printed
    assert f"pytest {folder / 'tests'}" in printed
    text = (folder / "workflow.yaml").read_text()
    spec = yaml.safe_load(text)
    assert spec["coordinator"] == "script" and spec["coordinator_script"] == "script.py"
    assert "prompt" not in spec and "# prompt: prompt.md" in text  # one line to switch
    fixture = json.loads((folder / "tests" / "fixtures" / "example.json").read_text())
    assert fixture["fixture"] == 1 and fixture["workflow"] == "greet"

    assert tandem_new(project, "workflow", "ask", "--coordinator", "llm") == 0
    printed = capsys.readouterr().out
    text = (project.root / "workflows" / "ask" / "workflow.yaml").read_text()
    assert yaml.safe_load(text)["prompt"] == "prompt.md"
    assert "# coordinator_script: script.py" in text and "No tests/" in text
    assert "ANTHROPIC_API_KEY" in printed

    assert tandem_new(project, "plugin", "jotter") == 0
    printed = capsys.readouterr().out
    plugin = project.root / "plugins" / "jotter"
    assert str(plugin / "plugin.py") in printed and "jotter.remember" in printed
    manifest = yaml.safe_load((plugin / "plugin.yaml").read_text())
    assert manifest == {
        "name": "jotter",
        "version": "0.1.0",
        "description": manifest["description"],
        "module": "plugin.py",
        "secrets": [],
        "call_timeout_s": 30,
    }


BAD_NAMES = [
    ("workflow", "Greet", "not a valid workflow name"),
    ("workflow", "has space", "not a valid workflow name"),
    ("workflow", "_lead", "not a valid workflow name"),
    ("workflow", "../escape", "not a valid workflow name"),
    ("workflow", "a/b", "not a valid workflow name"),
    ("workflow", "x" * 65, "at most 64"),
    ("plugin", "My", "not a valid plugin name"),
    ("plugin", "my-plugin", "lower_snake_case"),
    ("plugin", "1st", "not a valid plugin name"),
    ("plugin", "two__underscores", "not a valid plugin name"),
    ("plugin", "x" * 33, "at most 32"),
    ("plugin", "files", "reserved"),
    ("plugin", "state", "already in"),  # a built-in: a second would override its tools
]


@pytest.mark.parametrize(("kind", "name", "message"), BAD_NAMES)
def test_a_bad_or_taken_name_is_a_usage_error(
    project: Project, kind: str, name: str, message: str
) -> None:
    before = sorted(project.root.rglob("*"))
    with pytest.raises(UsageError, match=message):
        tandem_new(project, kind, name)
    assert sorted(project.root.rglob("*")) == before  # nothing written


def test_an_existing_folder_is_never_overwritten(project: Project) -> None:
    assert tandem_new(project, "workflow", "greet") == 0
    script = project.root / "workflows" / "greet" / "script.py"
    script.write_text("# mine\n")
    for argv in (["workflow", "greet"], ["workflow", "greet", "--coordinator", "llm"]):
        with pytest.raises(UsageError, match="already exists"):
            tandem_new(project, *argv)
    assert script.read_text() == "# mine\n"
    (project.root / "plugins" / "half_done").mkdir()  # a folder without a manifest
    with pytest.raises(UsageError, match="already exists"):
        tandem_new(project, "plugin", "half_done")


def test_a_plugin_goes_to_the_projects_own_plugins_folder(project: Project) -> None:
    assert tandem_new(project, "plugin", "here") == 0
    assert (project.root / "plugins" / "here" / "plugin.yaml").is_file()
    assert not (builtin_plugins_dir() / "here").exists()
    (project.root / "tandem.yaml").write_text("plugins_dirs: [vendor, plugins]\n")
    assert tandem_new(project, "plugin", "there") == 0
    assert (project.root / "vendor" / "there" / "plugin.yaml").is_file()
    with pytest.raises(UsageError, match="already in"):  # the other folder has it
        tandem_new(project, "plugin", "here")


def test_the_cli_writes_and_refuses(project: Project) -> None:
    made = tandem(project, "new", "workflow", "greet")
    assert made.returncode == 0, made.stderr
    assert "tandem --project" in made.stdout  # the next commands name this project
    again = tandem(project, "new", "workflow", "greet")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    bad = tandem(project, "new", "plugin", "Bad-Name")
    assert bad.returncode == 2
    assert "not a valid plugin name" in bad.stderr
