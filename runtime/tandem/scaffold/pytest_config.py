"""The project's pytest configuration, so that plain `pytest` at its root collects every
workflow's and plugin's tests together.

Each script workflow's test is `tests/test_script.py` and each plugin's
`tests/test_plugin.py`. Under pytest's default import mode two files of one name are both
imported as `test_script`, and the second fails ("import file mismatch"). In importlib
mode each is imported under a name of its own. A project with no pytest configuration
gets a `pytest.ini` that sets it; one with a configuration of its own is left alone, and
told when it lacks the mode.
"""

from __future__ import annotations

import configparser
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .base import ScaffoldError

PYTEST_INI = "pytest.ini"
IMPORTLIB = "--import-mode=importlib"
CONTENT = f"""\
# Written by `tandem new`. Every workflow's tests are tests/test_script.py and every
# plugin's tests/test_plugin.py: importlib mode imports each test file under a name of its
# own, so files of the same name in different folders never collide.
[pytest]
addopts = {IMPORTLIB}
"""


@dataclass(frozen=True)
class PytestConfig:
    path: Path
    written: bool  # by this call
    importlib: bool  # it sets importlib mode: same-named test files do not collide

    def note(self) -> str | None:
        """What to tell the user about it, if anything."""
        if self.written:
            return f"{self.path} (pytest imports each test file under a name of its own)"
        if not self.importlib:
            return (
                f"{self.path} does not set {IMPORTLIB}: add it to pytest's addopts there, or"
                " tests/test_*.py files of the same name in two folders collide"
            )
        return None


def ensure_pytest_config(root: Path) -> PytestConfig:
    """The configuration pytest reads at `root`; written when there is none."""
    found = _existing(root)
    if found is not None:
        return found
    path = root / PYTEST_INI
    try:
        path.write_text(CONTENT, encoding="utf-8")
    except OSError as error:
        raise ScaffoldError(f"cannot write {path}: {error}", path=path) from error
    return PytestConfig(path, written=True, importlib=True)


def _existing(root: Path) -> PytestConfig | None:
    """The first file pytest would take its configuration from, in pytest's order."""
    for name in ("pytest.toml", ".pytest.toml"):
        if (root / name).is_file():
            options = _table(_toml(root / name), "pytest")
            return PytestConfig(root / name, False, _importlib(options.get("addopts")))
    for name in ("pytest.ini", ".pytest.ini"):
        if (root / name).is_file():  # the file counts even without a [pytest] section
            return PytestConfig(root / name, False, _ini_importlib(root / name, "pytest"))
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        tool = _table(_table(_toml(pyproject), "tool"), "pytest")
        if tool:  # [tool.pytest.ini_options], or pytest 9's [tool.pytest]
            options = {**_table(tool, "ini_options"), **tool}
            return PytestConfig(pyproject, False, _importlib(options.get("addopts")))
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = root / name
        if path.is_file() and _ini_section(path, section) is not None:
            return PytestConfig(path, False, _ini_importlib(path, section))
    return None


def _table(table: dict[str, object], key: str) -> dict[str, object]:
    value = table.get(key)
    return value if isinstance(value, dict) else {}


def _toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _ini_section(path: Path, section: str) -> configparser.SectionProxy | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return None
    return parser[section] if parser.has_section(section) else None


def _ini_importlib(path: Path, section: str) -> bool:
    found = _ini_section(path, section)
    return found is not None and _importlib(found.get("addopts"))


def _importlib(addopts: object) -> bool:
    words = addopts.split() if isinstance(addopts, str) else addopts
    if not isinstance(words, list):
        return False
    text = " ".join(str(word) for word in words)
    return IMPORTLIB in text or "--import-mode importlib" in text
