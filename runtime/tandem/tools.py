"""Tools as the host knows them: spec, schema validator, and where they come from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tandem_sdk.annotations import ToolAnnotations
from tandem_sdk.errors import InvalidArguments

if TYPE_CHECKING:  # imported on first use: an embedded host starts its plugins before
    import jsonschema_rs  # paying for it (tandem.embedded)
    from jsonschema import Draft202012Validator


@dataclass(frozen=True)
class SchemaCheck:
    """A JSON Schema (2020-12), itself checked as one, that values are checked against:
    a tool's arguments, a workflow's trigger payload."""

    schema: dict[str, Any]
    _validator: Draft202012Validator = field(compare=False, repr=False)
    # The check every value gets, compiled by jsonschema-rs (well under a microsecond,
    # where jsonschema takes tens); None where jsonschema alone checks (see _compiled).
    _check: jsonschema_rs.Validator | None = field(compare=False, repr=False)

    @classmethod
    def create(cls, name: str, schema: dict[str, Any]) -> SchemaCheck:
        """jsonschema's SchemaError for a schema that is not one; ValueError for one that
        refers outside itself. `name` says whose schema it is."""
        from jsonschema import Draft202012Validator
        from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]

        Draft202012Validator.check_schema(schema)
        _refuse_remote_references(name, schema)
        # Only the dialects' own meta-schemas: nothing is ever fetched to check a value.
        return cls(schema, Draft202012Validator(schema, registry=REGISTRY), _compiled(schema))

    def problem(self, value: Any, whole: str) -> str | None:
        """None when `value` is valid, else `where: what is wrong` (`whole` names the
        value itself, when the problem is at its root)."""
        if self._check is not None and self._check.is_valid(value):
            return None
        from jsonschema.exceptions import best_match

        # jsonschema decides what the fast check refuses (it accepts a NaN, say) and names
        # the most relevant error.
        problem = best_match(self._validator.iter_errors(value))
        if problem is None:
            return None
        where = "/".join(str(p) for p in problem.absolute_path) or whole
        return f"{where}: {problem.message}"


@dataclass(frozen=True)
class HostTool:
    name: str  # "plugin.tool"
    provider: str  # the plugin name, or "files" for the built-in file tools
    description: str
    input_schema: dict[str, Any]
    annotations: ToolAnnotations
    dry_run_result_json: str  # what a dry run answers instead of a call; "" = the default
    _arguments: SchemaCheck = field(compare=False, repr=False)

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
        check = SchemaCheck.create(name, schema)
        return cls(name, provider, description, schema, annotations, dry_run_result_json, check)

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
        problem = self._arguments.problem(arguments, "arguments")
        if problem is not None:
            raise InvalidArguments(f"{self.name}: {problem}", tool=self.name)
        return arguments

    @property
    def schema_json(self) -> str:
        return json.dumps(self.input_schema)  # in declaration order: signatures read so


def _objects(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object in a schema, itself included: subschemas and keyword maps alike."""
    if isinstance(schema, list):
        for item in schema:
            yield from _objects(item)
    elif isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _objects(value)


def _refuse_remote_references(name: str, schema: dict[str, Any]) -> None:
    """A `$ref` outside the schema itself would have the host fetch it: refused, with what
    to do instead, when the plugin describes the tool (or the workflow loads)."""
    for node in _objects(schema):
        for keyword in ("$ref", "$dynamicRef"):
            target = node.get(keyword)
            if isinstance(target, str) and not target.startswith("#"):
                raise ValueError(
                    f"{name}: its input schema refers to {target!r}, outside itself; the "
                    "host never fetches a schema: put what it names under $defs"
                )


def _compiled(schema: dict[str, Any]) -> jsonschema_rs.Validator | None:
    """`schema` compiled by jsonschema-rs (offline: it fetches nothing), for a check whose
    every acceptance jsonschema would make too. None, and jsonschema alone checks, where
    the two read a schema differently, a regex (jsonschema-rs reads `\\w`, `\\d` and `\\s`
    as ECMA-262 does, Python as Unicode classes) or a fractional `multipleOf` (exact
    decimal against float arithmetic), and where it cannot compile the schema."""
    if any(_reads_differently(node) for node in _objects(schema)):
        return None
    import jsonschema_rs

    try:
        return jsonschema_rs.Draft202012Validator(schema, offline=True)
    except jsonschema_rs.ValidationError:
        return None


def _reads_differently(node: dict[str, Any]) -> bool:
    multiple = node.get("multipleOf")
    return (
        "pattern" in node
        or "patternProperties" in node
        or (isinstance(multiple, float) and not multiple.is_integer())
    )
