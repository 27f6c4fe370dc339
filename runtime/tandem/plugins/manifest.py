"""`plugins/<name>/plugin.yaml`: read by the host without importing any plugin code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tandem_sdk.errors import DefinitionError
from tandem_sdk.plugin import NAME_PATTERN

MANIFEST_FILE = "plugin.yaml"
MODEL_KEY = "ANTHROPIC_API_KEY"  # the LLM coordinator's credential stays in the host


class PluginManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN.pattern, max_length=32)]
    version: str = "0.0.0"
    description: str = ""
    module: str = "plugin.py"
    # Names of the daemon's environment variables this plugin may see. No others reach it.
    secrets: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list
    )
    call_timeout_s: Annotated[float, Field(gt=0, le=3_600)] = 30
    folder: Path = Field(default=Path(), exclude=True)

    @field_validator("secrets")
    @classmethod
    def _not_the_model_key(cls, secrets: list[str]) -> list[str]:
        if MODEL_KEY in secrets:
            raise ValueError(f"{MODEL_KEY} is the daemon's own and reaches no plugin")
        return secrets

    @property
    def module_path(self) -> Path:
        return self.folder / self.module


def read_manifest(folder: Path) -> PluginManifest:
    path = folder / MANIFEST_FILE
    try:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise DefinitionError(str(path), "must be a mapping of fields")
        data.setdefault("name", folder.name)
        manifest = PluginManifest.model_validate({**data, "folder": folder})
    except (OSError, yaml.YAMLError) as error:
        raise DefinitionError(str(path), f"cannot read: {error}") from error
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise DefinitionError(str(path), f"{field}: {first['msg']}") from error
    if not manifest.module_path.is_file():
        raise DefinitionError(str(path), f"module: {manifest.module} does not exist")
    return manifest


def find_plugins(folders: list[Path]) -> tuple[list[PluginManifest], list[DefinitionError]]:
    """Every plugin folder under `folders`; a later folder's plugin overrides an earlier one's."""
    found: dict[str, PluginManifest] = {}
    errors: list[DefinitionError] = []
    for root in folders:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if not (folder / MANIFEST_FILE).is_file():
                continue
            try:
                manifest = read_manifest(folder)
            except DefinitionError as error:
                errors.append(error)
                continue
            found[manifest.name] = manifest
    return list(found.values()), errors
