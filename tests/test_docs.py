"""The docs cite only what the project holds: every relative link and every repository path
in README.md and docs/*.md exists, and no file names a document the project lacks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Where a cited path starts: a top-level folder or file of the repository, or a package
# (`tandem/...`, `tandem_sdk/...`), which must be cited from the root (runtime/, sdk/).
PACKAGES = {"tandem", "tandem_sdk"}
# Placeholders and what is not a path in the repository: <name>, {x}, globs, $VARS, URLs,
# absolute or home paths, ./relative ones, a segment in capitals (workflows/NAME/...).
NOT_A_PATH = re.compile(r"[<>{}*$:]|^[./~]")
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*")
ABSENT = "DESIGN" + ".md"  # spelled apart so that this file does not cite it


def cited_paths(text: str) -> Iterator[str]:
    top = {p.name for p in REPO.iterdir() if not p.name.startswith(".")}
    for token in re.findall(r"`([^`\s]+)`", text):
        if "/" not in token or NOT_A_PATH.search(token):
            continue
        parts = [part for part in token.split("/") if part]
        if parts[0] in PACKAGES or (
            parts[0] in top and not any(PLACEHOLDER.fullmatch(p) for p in parts)
        ):
            yield token


def test_every_path_the_docs_cite_exists() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for link in re.findall(r"\]\(([^)\s#]+)", text):
            if not re.match(r"[a-z]+:", link) and not (doc.parent / link).exists():
                missing.append(f"{doc.name}: link {link}")
        missing += [f"{doc.name}: {p}" for p in cited_paths(text) if not (REPO / p).exists()]
    assert missing == []


def project_files() -> Iterator[Path]:
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO).parts
        if any(part.startswith(".") or part == "__pycache__" for part in relative):
            continue
        if path.is_file() and path.suffix not in {".pyc", ".sqlite3"}:
            yield path


def test_no_file_cites_a_document_the_project_lacks() -> None:
    assert not (REPO / ABSENT).exists()
    citing = []
    for path in project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if ABSENT in text:
            citing.append(str(path.relative_to(REPO)))
    assert citing == []


def test_the_tool_names_in_the_docs_exist() -> None:
    # Tool names the docs use in code (`plugin.tool`, "plugin.tool") of the built-in plugins.
    defined: dict[str, set[str]] = {}
    for plugin in (REPO / "plugins").iterdir():
        source = (plugin / "plugin.py").read_text(encoding="utf-8")
        defined[plugin.name] = set(re.findall(r"@tool[^\n]*\n(?:@[^\n]*\n)*def (\w+)", source))
    wrong = []
    for doc in DOCS:
        for plugin, tool in re.findall(r"[`\"]([a-z_]+)\.([a-z_]+)[`\"(]", doc.read_text()):
            if plugin in defined and tool not in defined[plugin]:
                wrong.append(f"{doc.name}: {plugin}.{tool}")
    assert wrong == []
