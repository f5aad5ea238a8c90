"""Registering text envs with gymnasium, with `episodes=E` turning any id into a multi-episode trial."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym

from envs.multi_episode import MultiEpisode

__all__ = ["register", "make_text_env", "CatalogEntry", "catalog", "MULTI_EPISODE_KEYS"]

#: Keyword arguments that `gymnasium.make(id, ...)` routes to `MultiEpisode` instead of the env.
MULTI_EPISODE_KEYS = (
    "episodes",
    "total_step_cap",
    "reflection",
    "success_reward",
    "episode_header",
    "repeat_instructions",
)


@dataclass(frozen=True)
class CatalogEntry:
    """One registered id, as `python -m envs list` prints it."""

    env_id: str
    family: str
    hidden: str
    episodes: int
    oracle: str
    kwargs: dict = field(default_factory=dict, compare=False)


_CATALOG: dict[str, CatalogEntry] = {}


def _resolve(env_class: type | str | Callable) -> Callable:
    if isinstance(env_class, str):
        module_name, _, attribute = env_class.partition(":")
        return getattr(importlib.import_module(module_name), attribute)
    return env_class


def make_text_env(env_class: type | str | Callable, /, **kwargs: Any) -> gym.Env:
    """Build `env_class(**env_kwargs)`, wrapped in `MultiEpisode` when `episodes` > 1 (or any trial key).

    This is the entry point behind every id registered with `envs.register`, so
    `gymnasium.make("icl/BernoulliBandit-Hard-v0", episodes=5, horizon=20)` is a 5-episode trial of
    20 pulls each. The multi-episode keys are `MULTI_EPISODE_KEYS`; everything else goes to the env.
    """
    trial = {key: kwargs.pop(key) for key in MULTI_EPISODE_KEYS if key in kwargs}
    env = _resolve(env_class)(**kwargs)
    if not trial or trial == {"episodes": 1}:
        return env
    return MultiEpisode(env, **{"episodes": 1, **trial})


def register(
    env_id: str,
    env_class: type | str | Callable,
    kwargs: dict | None = None,
    *,
    family: str | None = None,
    hidden: str = "",
    oracle: str = "",
    episodes: int = 1,
) -> None:
    """Register a text env with gymnasium in one call.

    Args:
        env_id: `Namespace/Family-Tier-vN`, with no `:` (gymnasium would read it as a module path).
        env_class: the env class, a `"module:Class"` string, or any factory returning a gymnasium Env.
        kwargs: default constructor arguments (may include `MULTI_EPISODE_KEYS` such as `episodes`).
        family: catalog family name (defaults to the class name).
        hidden: what the hidden task is, for the catalog.
        oracle: the oracle or strong baseline, for the catalog.
        episodes: the default number of episodes per trial (stored in `kwargs` when > 1).

    Raises:
        ValueError: on an id containing `:`.
    """
    if ":" in env_id:
        raise ValueError(f"env id {env_id!r} contains ':'; gymnasium.make would import it as a module")
    kwargs = dict(kwargs or {})
    if episodes > 1:
        kwargs.setdefault("episodes", episodes)
    name = family or (env_class if isinstance(env_class, str) else getattr(env_class, "__name__", "env"))
    if isinstance(name, str) and ":" in name:
        name = name.split(":")[-1]
    gym.register(id=env_id, entry_point=functools.partial(make_text_env, env_class), kwargs=kwargs)
    _CATALOG[env_id] = CatalogEntry(
        env_id, str(name), hidden, int(kwargs.get("episodes", 1)), oracle, dict(kwargs)
    )


def catalog() -> list[CatalogEntry]:
    """Every id registered through `envs.register`, in registration order."""
    return list(_CATALOG.values())
