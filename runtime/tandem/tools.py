"""Tools as the host knows them: spec, schema validator, and where they come from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tandem_sdk.annotations import ToolAnnotations
from tandem_sdk.errors import InvalidArguments

if TYPE_CHECKING:  # imported on first use: an embedded host starts its plugins before
    import jsonschema_rs  # paying for it (tandem.embedded)
    from jsonschema import Draft202012Validator


@dataclass(frozen=True)
class HostTool:
    name: str  # "plugin.tool"
    provider: str  # the plugin name, or "files" for the built-in file tools
    description: str
    input_schema: dict[str, Any]
    annotations: ToolAnnotations
    dry_run_result_json: str  # what a dry run answers instead of a call; "" = the default
    _validator: Draft202012Validator = field(compare=False, repr=False)
    # The same schema compiled by jsonschema-rs, for the check every call makes (well under
    # a microsecond, where jsonschema takes tens); None when it does not compile it.
    _check: jsonschema_rs.Validator | None = field(compare=False, repr=False)

    @classmethod
    def create(
        cls,
        name: str,
        provider: str,
        description: str,
        schema: dict[str, Any],
        annotations: ToolAnnotations,
        dry_run_result_json: str = "",
    ) -> HostTool:
        from jsonschema import Draft202012Validator

        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema)
        check = _compiled(schema)
        return cls(
            name, provider, description, schema, annotations, dry_run_result_json, validator, check
        )

    @property
    def side_effects(self) -> bool:
        return self.annotations.side_effects

    def dry_run_result(self, arguments: dict[str, Any]) -> str:
        """What a dry run answers instead of calling this tool, as JSON text."""
        if self.dry_run_result_json:
            return self.dry_run_result_json
        return json.dumps({"dry_run": True, "tool": self.name, "arguments": arguments})

    def parse_arguments(self, arguments_json: str) -> dict[str, Any]:
        """The arguments as a dict, or InvalidArguments naming what is wrong."""
        try:
            arguments = json.loads(arguments_json or "{}")
        except json.JSONDecodeError as error:
            raise InvalidArguments(
                f"{self.name}: arguments are not JSON: {error}", tool=self.name
            ) from None
        if not isinstance(arguments, dict):
            raise InvalidArguments(f"{self.name}: arguments must be a JSON object", tool=self.name)
        if self._check is not None and self._check.is_valid(arguments):
            return arguments
        from jsonschema.exceptions import best_match

        # jsonschema has the last word: it confirms a refusal and names the most relevant
        # error, as it did before the fast check (which may differ on a regex's dialect).
        problem = best_match(self._validator.iter_errors(arguments))
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "arguments"
            raise InvalidArguments(f"{self.name}: {where}: {problem.message}", tool=self.name)
        return arguments

    @property
    def schema_json(self) -> str:
        return json.dumps(self.input_schema)  # in declaration order: signatures read so


def _compiled(schema: dict[str, Any]) -> jsonschema_rs.Validator | None:
    """`schema` compiled by jsonschema-rs, never fetching a remote `$ref`; None when it
    cannot compile what jsonschema accepts (a Python-only regex such as `\\Z`), and then
    jsonschema alone checks the calls."""
    import jsonschema_rs

    try:
        return jsonschema_rs.Draft202012Validator(schema, offline=True)
    except jsonschema_rs.ValidationError:
        return None
