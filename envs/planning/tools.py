"""Tool calls for the planning envs: declared tools, OpenAI function schemas and argument validation.

An action is a JSON tool call inside the box, `\\boxed{{"name": "get_route", "arguments": {...}}}`.
`parse_tool_call` turns agent text into a validated `(tool name, arguments)` pair or raises `ToolError`
with a message written for the agent (what is wrong, what is allowed). Nothing here evaluates agent
text: JSON is read with `json.loads`, and every value is checked against the tool's declared types.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from envs.core import printable

__all__ = [
    "Parameter", "Tool", "ToolError", "parse_tool_call", "validate_arguments", "openai_schemas", "finite_number",
    "MAX_STRING_CHARS",
]

#: Longest string argument accepted (names, dates, cities); a plan is an object, not a string.
MAX_STRING_CHARS = 200
_TYPES = ("string", "integer", "number", "boolean", "object")


class ToolError(ValueError):
    """A tool call that cannot be run; the message is shown to the agent as the tool's reply."""


@dataclass(frozen=True)
class Parameter:
    """One argument of a tool, declared once and used both for validation and for the OpenAI schema.

    Attributes:
        name: argument name.
        kind: JSON type, one of "string", "integer", "number", "boolean", "object".
        description: one line for the schema.
        required: whether the call must include it.
        choices: allowed values of a string argument (an enum), or empty for any string.
        minimum: lower bound of a numeric argument.
        maximum: upper bound of a numeric argument.
    """

    name: str
    kind: str
    description: str
    required: bool = True
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self):
        if self.kind not in _TYPES:
            raise ValueError(f"Parameter {self.name!r}: kind={self.kind!r}; allowed: {_TYPES}")

    def schema(self) -> dict:
        """The JSON-schema property for this argument (a fresh dict)."""
        prop: dict[str, Any] = {"type": self.kind, "description": self.description}
        if self.choices:
            prop["enum"] = list(self.choices)
        if self.minimum is not None:
            prop["minimum"] = self.minimum
        if self.maximum is not None:
            prop["maximum"] = self.maximum
        return prop


@dataclass(frozen=True)
class Tool:
    """A tool the agent may call: its name, a description and its parameters."""

    name: str
    description: str
    parameters: tuple[Parameter, ...] = ()

    def schema(self) -> dict:
        """The tool as an OpenAI function-calling schema (a fresh dict every call)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {p.name: p.schema() for p in self.parameters},
                    "required": [p.name for p in self.parameters if p.required],
                    "additionalProperties": False,
                },
            },
        }

    def signature(self) -> str:
        """`name(arg, arg?)` for the instructions (optional arguments end with `?`)."""
        args = ", ".join(p.name + ("" if p.required else "?") for p in self.parameters)
        return f"{self.name}({args})"


def openai_schemas(tools: Mapping[str, Tool]) -> list[dict]:
    """Every tool as an OpenAI function schema, in declaration order (fresh objects)."""
    return [tool.schema() for tool in tools.values()]


def finite_number(value: Any) -> bool:
    """Whether a decoded JSON value is a number a float can hold (never a bool, NaN or infinity).

    JSON integers are unbounded: `1` followed by 400 zeros decodes to a Python int that `math.isfinite`
    and `float()` cannot convert (OverflowError), so an int is compared with the largest float instead
    (int-float comparison is exact in Python).
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= sys.float_info.max
    return isinstance(value, float) and math.isfinite(value)


def _shown(value: Any) -> str:
    """A short printable rendering of any decoded JSON value, for error messages (never raises)."""
    if isinstance(value, str):
        return printable(repr(value), 60)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of {len(str(abs(value)))} digits"
    try:
        return printable(json.dumps(value), 60)
    except (ValueError, RecursionError):
        return "a value nested too deeply to show"


def _check_value(parameter: Parameter, value: Any) -> Any:
    """The validated value, or ToolError naming the argument, the expected type and what came."""
    name, kind = parameter.name, parameter.kind
    shown = _shown(value)
    if kind == "string":
        if not isinstance(value, str):
            raise ToolError(f"argument '{name}' must be a string, got {shown}")
        value = value.strip()
        if len(value) > MAX_STRING_CHARS:
            raise ToolError(f"argument '{name}' is {len(value)} characters long; at most {MAX_STRING_CHARS} allowed")
        if parameter.choices and value not in parameter.choices:
            raise ToolError(f"argument '{name}' is {shown}; allowed: {', '.join(parameter.choices)}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ToolError(f"argument '{name}' must be true or false, got {shown}")
        return value
    if kind == "object":
        if isinstance(value, str):
            # Some clients double-encode nested objects as JSON strings.
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                pass
        if not isinstance(value, dict):
            raise ToolError(f"argument '{name}' must be a JSON object, got {shown}")
        return value
    # Numbers: bool is an int subclass in Python but never a valid number here.
    if not finite_number(value):
        raise ToolError(f"argument '{name}' must be a finite {kind}, got {shown}")
    if kind == "integer":
        if value != int(value):
            raise ToolError(f"argument '{name}' must be a whole number, got {shown}")
        value = int(value)
    if parameter.minimum is not None and value < parameter.minimum:
        raise ToolError(f"argument '{name}' must be >= {parameter.minimum:g}, got {shown}")
    if parameter.maximum is not None and value > parameter.maximum:
        raise ToolError(f"argument '{name}' must be <= {parameter.maximum:g}, got {shown}")
    return value


def validate_arguments(tool: Tool, arguments: Any) -> dict:
    """Check `arguments` against `tool`'s parameters; return a clean dict or raise ToolError."""
    if not isinstance(arguments, dict):
        raise ToolError(f"'arguments' of {tool.name} must be a JSON object, e.g. {{\"city\": \"...\"}}")
    declared = {p.name: p for p in tool.parameters}
    unknown = sorted(key for key in arguments if key not in declared)
    if unknown:
        allowed = ", ".join(declared) or "none"
        names = ", ".join(printable(key, 30) for key in unknown[:5])
        raise ToolError(f"{tool.name} got unknown argument(s) {names}; allowed: {allowed}")
    clean = {}
    for parameter in tool.parameters:
        if parameter.name not in arguments or arguments[parameter.name] is None:
            if parameter.required:
                raise ToolError(f"{tool.name} needs argument '{parameter.name}' ({parameter.description})")
            continue
        clean[parameter.name] = _check_value(parameter, arguments[parameter.name])
    return clean


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        detail = printable(str(error), 80) if isinstance(error, ValueError) else "nested too deeply"
        raise ToolError(
            'the action is not valid JSON (' + detail + '). Write {"name": "<tool>", "arguments": {...}} '
            "inside \\boxed{}"
        ) from None


def parse_tool_call(action: str, tools: Mapping[str, Tool]) -> tuple[str, dict]:
    """Read one JSON tool call from the parsed action text.

    Accepts `{"name": ..., "arguments": {...}}`, arguments given as a JSON string (as OpenAI sends
    them), and OpenAI's `{"type": "function", "function": {...}}` wrapper.

    Args:
        action: the text inside the box (already length-capped by the env).
        tools: the tools available, by name.

    Returns:
        The tool name and its validated arguments.

    Raises:
        ToolError: with a readable message for malformed JSON, unknown tools or bad arguments.
    """
    call = _decode(action)
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        call = call["function"]
    if not isinstance(call, dict) or "name" not in call:
        raise ToolError('a tool call is a JSON object {"name": "<tool>", "arguments": {...}}; the "name" is missing')
    name = call["name"]
    if not isinstance(name, str) or name not in tools:
        shown = printable(name if isinstance(name, str) else json.dumps(name), 40)
        raise ToolError(f"unknown tool {shown!r}; available: {', '.join(tools)}")
    extra = sorted(set(call) - {"name", "arguments", "type", "id"})
    if extra:
        raise ToolError(f"unexpected key(s) {', '.join(printable(k, 20) for k in extra[:5])}; use only name and arguments")
    arguments = call.get("arguments", {})
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        arguments = _decode(arguments) if arguments.strip() else {}
    return name, validate_arguments(tools[name], arguments)
