"""Evaluation suites: named sets of env ids with episodes per trial and seeds, from `configs/suite/*.yaml`.

A suite is a `SuiteConfig` (validated by its schema); `include` makes a compound suite (`all`) whose
members keep their own trials, seeds and ranking rule. `resolve_suite` expands it into plain
`SuiteRun`s, checking that every id is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from leaderboard.evaluate_config import SuiteConfig

__all__ = [
    "CONFIG_DIR",
    "SuiteRun",
    "SuiteEnv",
    "suite_names",
    "load_suite",
    "resolve_suite",
    "check_registered",
    "merge_suite_definitions",
]

#: The repository's Hydra config directory (suites live in its `suite/` group).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class SuiteEnv:
    """One env of a resolved suite: id, episodes per trial (never None) and `gymnasium.make` kwargs."""

    env_id: str
    episodes: int
    kwargs: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready form (kwargs as a dict)."""
        return {"id": self.env_id, "episodes": self.episodes, "kwargs": dict(self.kwargs)}


@dataclass(frozen=True)
class SuiteRun:
    """A resolved, non-compound suite: what to run and with which seeds."""

    name: str
    description: str
    envs: tuple[SuiteEnv, ...]
    seeds: tuple[int, ...]
    rank_by: str

    def to_dict(self) -> dict:
        """JSON-ready form, written next to the results so `render` needs no config files."""
        return {
            "name": self.name,
            "description": self.description,
            "envs": [env.to_dict() for env in self.envs],
            "seeds": list(self.seeds),
            "rank_by": self.rank_by,
        }


def suite_names(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Names of the suites defined under `<config_dir>/suite/`."""
    return sorted(path.stem for path in (config_dir / "suite").glob("*.yaml"))


def load_suite(name: str, config_dir: Path = CONFIG_DIR) -> SuiteConfig:
    """Read and validate `<config_dir>/suite/<name>.yaml` (safe YAML; its Hydra `defaults` key is skipped).

    Raises:
        ValueError: naming the available suites when `name` has no file.
    """
    path = config_dir / "suite" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no suite {name!r}; available suites: {suite_names(config_dir)} (files in {path.parent})")
    raw = yaml.safe_load(path.read_text()) or {}
    raw.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.structured(SuiteConfig), raw)
    return OmegaConf.to_object(merged)


def check_registered(env_ids: list[str], suite_name: str) -> list[str]:
    """The bare registered ids of `env_ids`, importing the module of any `module:ns/Id-v0` id first.

    Returns:
        The ids without their `module:` prefix, in order (rows and seeds are keyed by these).

    Raises:
        ValueError: naming every id that is not registered and how to list the registered ones.
    """
    import envs

    resolved, missing = [], []
    for env_id in env_ids:
        try:
            resolved.append(envs.resolve_env_id(env_id))
        except ValueError:
            missing.append(env_id)
    if missing:
        raise ValueError(
            f"suite {suite_name!r} lists env ids that are not registered: {missing}. "
            "`python -m envs list` prints the registered ids; the family may not be installed yet "
            "(TextArena ids need the `textarena` extra), the id is misspelled in the suite's file, or your own "
            "ids need `imports=[my_pkg.envs]`, a `my_pkg.envs:` prefix or an `icl_arena.envs` entry point."
        )
    return resolved


def resolve_suite(
    suite: SuiteConfig, trials: int | None = None, config_dir: Path = CONFIG_DIR, _seen: tuple[str, ...] = ()
) -> list[SuiteRun]:
    """Expand `suite` (and its `include`s, depth first) into runnable suites.

    Args:
        suite: a validated suite config.
        trials: trials per env for every resolved suite (None: each suite's own count).
        config_dir: where included suites are read from.

    Returns:
        The suite itself when it lists envs, then its included suites; names are unique.

    Raises:
        ValueError: on an unregistered env id or an include cycle.
    """
    if suite.name in _seen:
        raise ValueError(f"suite include cycle: {' -> '.join(_seen + (suite.name,))}")
    runs: list[SuiteRun] = []
    if suite.envs:
        import envs

        env_ids = check_registered([env.id for env in suite.envs], suite.name)
        count = suite.trials if trials is None else trials
        envs_resolved = tuple(
            SuiteEnv(
                env_id,
                envs.default_episodes(env_id) if env.episodes is None else int(env.episodes),
                tuple(sorted(env.kwargs.items())),
            )
            for env_id, env in zip(env_ids, suite.envs, strict=True)
        )
        seeds = tuple(range(suite.seed_start, suite.seed_start + count))
        runs.append(SuiteRun(suite.name, suite.description, envs_resolved, seeds, suite.rank_by.value))
    for name in suite.include:
        for run in resolve_suite(load_suite(name, config_dir), trials, config_dir, _seen + (suite.name,)):
            if all(run.name != existing.name for existing in runs):
                runs.append(run)
    return runs


def merge_suite_definitions(known: dict, update: dict) -> dict:
    """One suite definition from two: the union of their envs and of their seeds (runs may differ in trials)."""
    envs_merged = list(known["envs"])
    for env in update["envs"]:
        if all((env["id"], env["episodes"]) != (other["id"], other["episodes"]) for other in envs_merged):
            envs_merged.append(env)
    return {**update, "envs": envs_merged, "seeds": sorted(set(known["seeds"]) | set(update["seeds"]))}
