"""What both command lines share: checking a composed config against its dataclass schema, one error format.

- Every key must be a field of the dataclass at its place (`+` keys included: Hydra adds them, a
  dataclass would drop them silently); an unknown key names the closest valid one ("did you mean").
- Every number in the typed config must be finite (`train.lr=inf` is refused), dict values included, and
  every seed non-negative; the dataclasses' `__post_init__` check each key's own range.
- `run(app, prog=...)` runs a `@hydra.main` app and reports any config error the same way for both
  command lines: one message on stderr, exit code 2, no traceback (unless `HYDRA_FULL_ERROR=1`).
- Keys under a free-form dict field (`train.extra`, `agent.kwargs`, `env.kwargs`) need no `+`:
  `free_form_overrides` adds Hydra's `++` (add or override) to them.

Schemas are walked, never listed, so a field added to any dataclass is covered at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
import typing
from typing import Any, Callable, Iterator, Sequence

__all__ = [
    "ConfigError",
    "closest",
    "unknown_key_message",
    "check_known_keys",
    "check_finite",
    "typed_config",
    "free_form_overrides",
    "explain",
    "exit_if_config_error",
    "run",
    "EXIT_CONFIG_ERROR",
]

#: The exit code of a command line refusing its config (argparse's, and most Unix tools').
EXIT_CONFIG_ERROR = 2


class ConfigError(ValueError):
    """A config the command line refuses; the message names the key, the value and the fix."""


def closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate nearest to `word` (difflib's ratio, at least 0.6), or None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(full_key: str, allowed: Sequence[str]) -> str:
    """`unknown key `trails`; did you mean `trials`? (allowed: ...)`, for a key missing from its schema."""
    parent, _, key = full_key.rpartition(".")
    suggestion = closest(key, allowed)
    hint = f"; did you mean `{parent + '.' if parent else ''}{suggestion}`?" if suggestion else ""
    where = f"`{parent}`" if parent else "the top level"
    return f"unknown key `{full_key}`{hint} (keys of {where}: {', '.join(sorted(allowed))})"


def _field_names(schema: type) -> list[str]:
    return [field.name for field in dataclasses.fields(schema)]


def _walk_unknown(node: Any, path: str) -> Iterator[tuple[str, list[str]]]:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, ListConfig):
        for index in range(len(node)):
            yield from _walk_unknown(node._get_node(index), f"{path}[{index}]")
        return
    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
        return
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return  # a free-form dict: its keys are the values' business (env kwargs, GRPOConfig fields, ...)
    allowed = _field_names(schema)
    for key in node.keys():
        full_key = f"{path}.{key}" if path else str(key)
        if key not in allowed:
            if not (path == "" and key == "hydra"):
                yield full_key, allowed
            continue
        yield from _walk_unknown(node._get_node(key), full_key)


def check_known_keys(composed: Any) -> None:
    """Refuse keys that are no field of the dataclass at their place (Hydra's `+key=value` adds them).

    Raises:
        ConfigError: naming the first unknown key, the closest valid one and the allowed keys.
    """
    for full_key, allowed in _walk_unknown(composed, ""):
        raise ConfigError(unknown_key_message(full_key, allowed))


def _walk_numbers(value: Any, path: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk_numbers(getattr(value, field.name), f"{path}.{field.name}" if path else field.name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_numbers(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk_numbers(item, f"{path}[{index}]")


def check_finite(config: Any) -> None:
    """Refuse NaN and infinities anywhere in a typed config (fields, and values of its dicts and lists), and
    negative seeds (every key named `seed` or `*_seed`: numpy refuses them).

    Raises:
        ConfigError: naming the key.
    """
    for path, number in _walk_numbers(config, ""):
        if isinstance(number, float) and not math.isfinite(number):
            raise ConfigError(f"{path}={number} must be a finite number")
        name = path.rpartition(".")[2]
        if (name == "seed" or name.endswith("_seed")) and number < 0:
            raise ConfigError(f"{path}={number} must be >= 0 (a seed)")


def typed_config(composed: Any) -> Any:
    """The typed dataclass of a composed config, after every check of this module.

    Raises:
        ConfigError: an unknown key, a value its dataclass refuses (`__post_init__`), or a non-finite number.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    check_known_keys(composed)
    try:
        config = OmegaConf.to_object(composed)
    except (ValueError, OmegaConfBaseException) as error:
        raise ConfigError(explain(error)) from error
    check_finite(config)
    return config


def _free_form_paths(schema: type, prefix: str = "", seen: frozenset = frozenset()) -> set[str]:
    """Dotted paths of the dict-typed fields under `schema` (its subclasses' fields too: `agent=` picks one)."""
    paths: set[str] = set()
    if schema in seen:
        return paths
    classes = [schema, *_subclasses(schema)]
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            annotation = _unwrap_optional(hints.get(field.name, field.type))
            path = f"{prefix}{field.name}"
            origin = typing.get_origin(annotation) or annotation
            if origin in (dict, typing.Dict):
                paths.add(path)
            elif dataclasses.is_dataclass(annotation):
                paths |= _free_form_paths(annotation, path + ".", seen | {schema})
    return paths


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def free_form_overrides(overrides: Sequence[str], schema: type) -> list[str]:
    """`train.extra.top_p=0.9` -> `++train.extra.top_p=0.9` for keys under a dict-typed field (no `+` needed)."""
    paths = _free_form_paths(schema)
    rewritten = []
    for override in overrides:
        key, equals, _ = override.partition("=")
        if equals and not key.startswith(("+", "~", "-")) and any(key.startswith(path + ".") for path in paths):
            override = "++" + override
        rewritten.append(override)
    return rewritten


def explain(error: BaseException) -> str:
    """One readable message for a Hydra or OmegaConf config error (with the closest valid name where one fits)."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(error, ConfigError):
        return str(error)
    if isinstance(error, MissingConfigException):
        missing = str(getattr(error, "missing_cfg_file", "") or "")
        group, _, name = missing.rpartition("/")
        options = [option for option in (getattr(error, "options", None) or []) if not option.endswith("_schema")]
        if options:
            suggestion = closest(name, options)
            hint = f" (did you mean {group}={suggestion}?)" if suggestion else ""
            return f"Could not find '{missing}'{hint}; available {group}= options: {', '.join(options)}"
        return str(error).splitlines()[0]
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and dataclasses.is_dataclass(
            getattr(cause, "object_type", None)):
        return unknown_key_message(str(cause.full_key), _field_names(cause.object_type))
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        reason = str(cause).splitlines()[0]
        return f"{key}: {reason}" if key else reason
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _is_config_error(error: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(error, (ConfigError, HydraException, OmegaConfBaseException))


def exit_if_config_error(error: BaseException, prog: str) -> None:
    """For a config error, print `<prog>: error: <message>` and exit with code 2; otherwise return (re-raise).

    For command lines that compose their config themselves (`trainers.soda`, `trainers.compress`).
    """
    if _is_config_error(error) and os.environ.get("HYDRA_FULL_ERROR") != "1":
        print(f"{prog}: error: {explain(error)}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None


def run(app: Callable[[], Any], *, prog: str, schema: type,
        rewrite: Callable[[list[str]], list[str]] | None = None) -> None:
    """Run a `@hydra.main` app from the command line, reporting a config error in the one shared way.

    `sys.argv`'s overrides go through `rewrite` (a command line's own shorthands) and
    `free_form_overrides` first. A config error (`ConfigError`, Hydra's and OmegaConf's) prints
    `<prog>: error: <message>` and exits with code 2; any other error propagates with its traceback.

    Args:
        app: the `@hydra.main`-decorated function, called with no arguments.
        prog: how the command is typed (`python -m trainers.orbit`).
        schema: the root dataclass (for the free-form dict fields).
        rewrite: the command line's own override shorthands.
    """
    arguments = list(sys.argv[1:])
    if rewrite is not None:
        arguments = rewrite(arguments)
    sys.argv[1:] = free_form_overrides(arguments, schema)
    before = os.environ.get("HYDRA_FULL_ERROR")
    user_wants_traceback = before == "1"
    # Hydra prints its own report and exits 1 unless HYDRA_FULL_ERROR=1; then it raises, and this reports.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except Exception as error:
        if user_wants_traceback or not _is_config_error(error):
            raise
        print(f"{prog}: error: {explain(error)}\n(`{prog} --cfg job` prints every key, `--help` lists the config "
              "groups, HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before
