"""`tandem rewrite` copies the workflow folder for the candidate as a run sees it: a link
out of the folder (to a host file a run cannot read) is never followed into the copy."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Project
from tandem.rewrite import write_candidate
from tandem.workflows.loader import load_workflow

SCRIPT = "def handler(trigger, tools, virtual_files, subagent):\n    return 1\n"


def test_the_candidate_copy_never_reads_a_host_file_through_a_link(
    project: Project, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    (host / "folder").mkdir(parents=True)
    (host / "secret.txt").write_text("host secret")
    (host / "folder" / "key").write_text("host secret")
    folder = project.workflow("w", script=SCRIPT, files={"notes.md": "the notes"})
    (folder / "secret.txt").symlink_to(host / "secret.txt")
    (folder / "files" / "up").symlink_to("../../../../host/secret.txt")
    (folder / "keys").symlink_to(host / "folder")
    (folder / "alias.md").symlink_to("files/notes.md")
    (folder / "same").symlink_to("files")
    os.mkfifo(folder / "pipe")  # copying it would block on the read
    assert (folder / "files" / "up").read_text() == "host secret"

    workflow = load_workflow(folder, [])
    candidate = write_candidate(workflow, project.root / ".tandem", SCRIPT)

    copied = {p.relative_to(candidate).as_posix() for p in candidate.rglob("*")}
    assert {"secret.txt", "files/up", "keys", "pipe"}.isdisjoint(copied)
    assert not [p for p in candidate.rglob("*") if p.is_file() and b"host" in p.read_bytes()]
    assert (candidate / "alias.md").read_text() == "the notes"
    assert (candidate / "same" / "notes.md").resolve() == (candidate / "files" / "notes.md")
    assert load_workflow(candidate, []).files == {"notes.md": b"the notes"}
