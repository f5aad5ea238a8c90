"""Registering text envs with gymnasium, with `episodes=E` turning any id into a multi-episode trial.

Third-party packages add ids in three ways, all of which reach every tool (`gymnasium.make`, the
baselines, `leaderboard.evaluate`, `trainers.orbit`, `python -m envs list`):

- an entry point in the `icl_arena.envs` group (`[project.entry-points."icl_arena.envs"]` in their
  `pyproject.toml`, naming a module that calls `envs.register` on import, or a function that does),
  loaded when `envs` is imported (`load_plugins`);
- `imports=[my_pkg.envs]` on either command line (`import_modules`);
- gymnasium's own `module:ns/Id-v0` form of an id, which imports `module` first (`resolve_env_id`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import gymnasium as gym

from envs.multi_episode import MultiEpisode

__all__ = [
    "register",
    "make_text_env",
    "CatalogEntry",
    "catalog",
    "catalog_entry",
    "registered_class",
    "default_episodes",
    "load_plugins",
    "import_modules",
    "resolve_env_id",
    "split_env_id",
    "MULTI_EPISODE_KEYS",
    "PLUGIN_GROUP",
]

#: The entry-point group whose entries are loaded when `envs` is imported.
PLUGIN_GROUP = "icl_arena.envs"

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
# The env class (or factory) behind each id registered here, for the generic baselines.
_CLASSES: dict[str, type | str | Callable] = {}
#: The spec kwarg naming the env class (`"module:Class"`), so every spec is JSON (`gym.spec(id).to_json()`).
ENV_CLASS_KEY = "env_class"


def _resolve(env_class: type | str | Callable) -> Callable:
    if isinstance(env_class, str):
        module_name, _, attribute = env_class.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
        return target
    return env_class


def _importable_name(env_class: type | str | Callable) -> str | None:
    """`"module:QualName"` when importing that gives back `env_class` itself (None for lambdas, local classes)."""
    if isinstance(env_class, str):
        return env_class
    module, qualname = getattr(env_class, "__module__", None), getattr(env_class, "__qualname__", "")
    # `__main__` and run_path's modules are not importable by name in another process.
    if not module or module == "__main__" or not all(part.isidentifier() for part in module.split(".")) \
            or "<" in qualname or getattr(sys.modules.get(module), "__spec__", None) is None:
        return None
    name = f"{module}:{qualname}"
    try:
        return name if _resolve(name) is env_class else None
    except (ImportError, AttributeError):
        return None


def make_text_env(env_class: type | str | Callable | None = None, /, **kwargs: Any) -> gym.Env:
    """Build `env_class(**env_kwargs)`, wrapped in `MultiEpisode` when `episodes` > 1 (or any trial key).

    This is the entry point behind every id registered with `envs.register`, so
    `gymnasium.make("icl/BernoulliBandit-Hard-v0", episodes=5, horizon=20)` is a 5-episode trial of
    20 pulls each. The multi-episode keys are `MULTI_EPISODE_KEYS`; everything else goes to the env.
    The class comes as the first argument or as the `env_class` keyword (`"module:Class"`, the form
    registered specs hold so that they serialise to JSON).
    """
    if env_class is None:
        env_class = kwargs.pop(ENV_CLASS_KEY)
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
    importable = _importable_name(env_class)
    if importable is not None:
        # A string entry point and a string class: the spec is plain data (`gym.spec(id).to_json()`).
        gym.register(id=env_id, entry_point=f"{__name__}:make_text_env", kwargs={ENV_CLASS_KEY: importable, **kwargs})
    else:  # a lambda or a class defined in __main__ or a function: works, but its spec is not JSON
        gym.register(id=env_id, entry_point=functools.partial(make_text_env, env_class), kwargs=kwargs)
    _CLASSES[env_id] = env_class
    _CATALOG[env_id] = CatalogEntry(
        env_id, str(name), hidden, int(kwargs.get("episodes", 1)), oracle, dict(kwargs)
    )


def catalog() -> list[CatalogEntry]:
    """Every id registered through `envs.register`, in registration order."""
    return list(_CATALOG.values())


def catalog_entry(env_id: str) -> CatalogEntry | None:
    """The catalog entry of `env_id` (bare or `module:`-prefixed), or None for ids registered elsewhere."""
    return _CATALOG.get(split_env_id(env_id)[1])


def registered_class(env_id: str) -> Callable | None:
    """The env class (or factory) behind `env_id`: from `envs.register`, else from a string gymnasium entry point."""
    bare = split_env_id(env_id)[1]
    if bare in _CLASSES:
        return _resolve(_CLASSES[bare])
    entry_point = gym.spec(bare).entry_point
    try:
        return _resolve(entry_point) if isinstance(entry_point, str) else entry_point
    except (ImportError, AttributeError):
        return None


def default_episodes(env_id: str) -> int:
    """Episodes per trial of `env_id` when none are asked for: its registered `episodes`, else 1."""
    entry = catalog_entry(env_id)
    if entry is not None:
        return entry.episodes
    return int(gym.spec(resolve_env_id(env_id)).kwargs.get("episodes", 1))


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """`"my_pkg.envs:mylab/Foo-v0"` -> `("my_pkg.envs", "mylab/Foo-v0")`; a bare id -> `(None, id)`."""
    module, separator, bare = env_id.rpartition(":")
    return (module, bare) if separator else (None, env_id)


def import_modules(modules: Iterable[str]) -> None:
    """Import each module (it registers its envs on import).

    Raises:
        ValueError: naming a module that cannot be imported and what to do.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(
                f"cannot import {module!r} to register its envs ({type(error).__name__}: {error}); "
                "install the package that provides it, or fix the name in imports=[...] or in the id's `module:` prefix"
            ) from None


def resolve_env_id(env_id: str) -> str:
    """The bare registered id of `env_id`, importing the module of a `module:ns/Id-v0` id first.

    Raises:
        ValueError: for an id gymnasium does not know, with gymnasium's closest names and how to list ids.
    """
    module, bare = split_env_id(env_id)
    if module:
        import_modules([module])
    try:
        gym.spec(bare)
    except gym.error.Error as error:
        raise ValueError(
            f"env id {env_id!r} is not a registered gymnasium id ({error}) `python -m envs list` prints the registered ids; "
            "an id from your own package needs `imports=[my_pkg.envs]`, a `my_pkg.envs:` prefix, or an "
            f"`{PLUGIN_GROUP}` entry point"
        ) from None
    return bare


def load_plugins() -> list[str]:
    """Load every `icl_arena.envs` entry point: a module registers its envs on import, a callable is called.

    A plugin that fails to load is reported with a warning (its ids are then missing) instead of
    breaking `import envs` for every other env.

    Returns:
        The names of the entry points that loaded.
    """
    loaded = []
    for entry_point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            target = entry_point.load()
            if callable(target):
                target()
        except Exception as error:  # a third-party bug must not take down every other env
            warnings.warn(
                f"icl_arena.envs plugin {entry_point.name!r} ({entry_point.value}) failed to load and registers "
                f"nothing: {type(error).__name__}: {error}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        loaded.append(entry_point.name)
    return loaded
