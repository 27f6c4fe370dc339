"""Plugins: a tool is a typed Python function; its JSON schema is derived, never written.

    from tandem_sdk import RunContext, tool

    @tool(side_effects=False)
    def get(key: str, ctx: RunContext) -> str | None:
        '''Read a value.

        Args:
            key: the key to read.
        '''

A parameter annotated `RunContext` is filled in by the host (run id, workflow) and is not
part of the schema. Every other parameter needs a type annotation; `*args` and `**kwargs`
are refused. A malformed signature raises DefinitionError naming the plugin and function.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints, overload

from .annotations import ToolAnnotations, resolve_annotations
from .errors import DefinitionError

if TYPE_CHECKING:  # imported where used: a script process never pays for them
    import pydantic

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RunContext:
    """Who is calling a tool, and until when. Ask for it by annotating a parameter with
    this type."""

    run_id: str
    workflow: str
    deadline_unix: float = 0.0  # when the host stops waiting for this call; 0: unknown

    def time_left(self) -> float | None:
        """Seconds until the host stops waiting (never negative), or None if unknown: how
        long a tool may wait, for example before retrying a rate-limited request."""
        if not self.deadline_unix:
            return None
        return max(self.deadline_unix - time.time(), 0.0)


@dataclass(frozen=True)
class ToolDefinition:
    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: ToolAnnotations
    function: Callable[..., Any]
    arguments: type[pydantic.BaseModel]
    context_parameter: str | None
    returns: pydantic.TypeAdapter[Any]
    # What a dry run answers instead of calling the tool: JSON text, "" for the host's default.
    dry_run_result_json: str = ""

    @property
    def side_effects(self) -> bool:
        return self.annotations.side_effects

    def invoke(self, arguments_json: str, context: RunContext) -> Any:
        """Validate, call, and return the JSON-ready result. Exceptions are the tool's."""
        parsed = self.arguments.model_validate_json(arguments_json or "{}")
        kwargs = {field: getattr(parsed, field) for field in type(parsed).model_fields}
        if self.context_parameter:
            kwargs[self.context_parameter] = context
        return self.returns.dump_python(self.function(**kwargs), mode="json")


_NO_RESULT = object()


@overload
def tool(function: F, /) -> F: ...
@overload
def tool(
    *,
    side_effects: bool | None = None,
    read_only: bool | None = None,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool | None = None,
    dry_run_result: Any = _NO_RESULT,
    name: str | None = None,
) -> Callable[[F], F]: ...


def tool(
    function: F | None = None,
    /,
    *,
    side_effects: bool | None = None,
    read_only: bool | None = None,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool | None = None,
    dry_run_result: Any = _NO_RESULT,
    name: str | None = None,
) -> F | Callable[[F], F]:
    """Mark a function as a tool, saying what it does (MCP's tool annotations):

    - `read_only=True` (or `side_effects=False`): it changes nothing; dry runs call it.
    - otherwise it has side effects; say whether it is `destructive` (default True: it may
      delete or overwrite) and `idempotent` (default False: a repeat changes more).
    - `open_world=False` for a tool that only reaches a closed store (default True).
    - `dry_run_result`: the JSON value a dry run answers instead of calling it (default:
      the host's `{"dry_run": true, ...}`).
    """

    def mark(f: F) -> F:
        f.__tandem_tool__ = {  # type: ignore[attr-defined]
            "name": name or f.__name__,
            "side_effects": side_effects,
            "read_only": read_only,
            "destructive": destructive,
            "idempotent": idempotent,
            "open_world": open_world,
            "dry_run_result": dry_run_result,
        }
        return f

    return mark(function) if function is not None else mark


def is_tool(value: object) -> bool:
    return callable(value) and hasattr(value, "__tandem_tool__")


def define_tool(plugin: str, function: Callable[..., Any]) -> ToolDefinition:
    """Derive a tool's definition from its signature and docstring; check it thoroughly."""
    import docstring_parser
    import pydantic

    marks: dict[str, Any] = getattr(function, "__tandem_tool__", {})
    name = marks.get("name", function.__name__)
    where = f"plugin {plugin!r}, function {function.__name__!r}"
    if not NAME_PATTERN.match(name) or len(plugin) + len(name) + 2 > 64:
        raise DefinitionError(
            where,
            f"tool name {name!r} must be lower_snake_case (and plugin__tool at most 64 chars)",
        )
    if inspect.iscoroutinefunction(function):
        raise DefinitionError(where, "tools are plain functions; async def is not supported")
    try:
        hints = get_type_hints(function)
    except Exception as error:
        raise DefinitionError(where, f"cannot resolve type hints: {error}") from error
    doc = docstring_parser.parse(inspect.getdoc(function) or "")
    described = {param.arg_name: param.description or "" for param in doc.params}
    fields: dict[str, Any] = {}
    context_parameter: str | None = None
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise DefinitionError(where, f"*{parameter.name}: variadic parameters are not allowed")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise DefinitionError(
                where, f"{parameter.name}: positional-only parameters are not allowed"
            )
        if parameter.name not in hints:
            raise DefinitionError(where, f"parameter {parameter.name!r} has no type annotation")
        annotation = hints[parameter.name]
        if annotation is RunContext:
            context_parameter = parameter.name
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (
            annotation,
            pydantic.Field(default, description=described.get(parameter.name) or None),
        )
    description = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p)
    if not description:
        raise DefinitionError(where, "a tool needs a docstring: it is the model's only guide")
    try:
        model = pydantic.create_model(
            f"{plugin}_{name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid"),
            **fields,
        )
        schema = _clean_schema(model.model_json_schema())
        returns = pydantic.TypeAdapter(hints.get("return", Any))
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as error:
        raise DefinitionError(
            where, f"types cannot be expressed as JSON schema: {error}"
        ) from error
    annotations = resolve_annotations(
        where,
        side_effects=marks.get("side_effects"),
        read_only=marks.get("read_only"),
        destructive=marks.get("destructive"),
        idempotent=marks.get("idempotent"),
        open_world=marks.get("open_world"),
    )
    dry_run_result = marks.get("dry_run_result", _NO_RESULT)
    if dry_run_result is not _NO_RESULT and annotations.read_only:
        raise DefinitionError(where, "dry_run_result: a read-only tool runs in dry runs")
    try:
        dry_run_json = "" if dry_run_result is _NO_RESULT else json.dumps(dry_run_result)
    except (TypeError, ValueError) as error:
        raise DefinitionError(where, f"dry_run_result is not JSON: {error}") from None
    return ToolDefinition(
        name=name,
        description=description,
        input_schema=schema,
        annotations=annotations,
        function=function,
        arguments=model,
        context_parameter=context_parameter,
        returns=returns,
        dry_run_result_json=dry_run_json,
    )


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles: they add tokens and say nothing the names don't."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def schema_json(definition: ToolDefinition) -> str:
    return json.dumps(definition.input_schema)  # declaration order, as signatures read
