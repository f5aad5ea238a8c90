"""Suite tables from results rows: per-agent metrics, normalised suite scores, memory gains, ranking.

A row belongs to every suite that lists its env id with its episode count and its seed (so a suite's
table never mixes in another suite's seed block). Per suite and agent:

- Metrics are over the agent's trials: success rates with Wilson intervals, every other metric a
  mean with a Student-t interval (`leaderboard.stats`).
- Normalised score: each trial's ranking metric (success at the last episode, or in-context regret)
  mapped to 0 = the zero reference and 1 = the oracle on that env, so no env's scale dominates. The
  one reference is the `oracle` (role oracle); the zero reference is, per env, the oracle's
  memoryless twin where it differs from the oracle there (games: the oracle that forgets each
  episode), else the chance agent (role `uniform`: `uniform` or `random`). Envs without both
  references are left out of the normalised aggregates. The suite reports the normalised mean and
  the interquartile mean of the trial scores, each with a stratified bootstrap interval (rliable).
- Memory gain: the agent minus its memoryless twin (the same config with `memory: false` for a
  baseline, `context: last_episode` for a model: the same seeds with earlier episodes removed from
  the context), paired by seed; per env in the ranking metric's units (positive = memory helps:
  more success, or less regret), per suite in normalised units with a stratified bootstrap interval.

Ranking: contestants (role `agent`) that ran on every env, by the normalised mean (higher first)
when every env has both references, else by the raw mean of the ranking metric; then by name.
Contestants that skipped an env are listed after, unranked; references (oracle, memoryless,
uniform) are listed apart and never ranked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from leaderboard.results import row_key
from leaderboard.stats import Interval, iqm_interval, mean_interval, normalise, proportion_interval, t_interval

__all__ = [
    "METRICS",
    "SUITE_MEAN",
    "REFERENCE_ROLES",
    "Metric",
    "AgentEntry",
    "EnvReference",
    "SuiteTable",
    "env_label",
    "metric_interval",
    "behaviour",
    "memory_twin_behaviour",
    "pair_by_seed",
    "aggregate",
    "format_value",
    "format_interval",
    "ranking_rule",
    "table_rows",
    "per_env_rows",
    "metadata_text",
]


@dataclass(frozen=True)
class Metric:
    """A per-trial metric: key (as in the json/csv), table label, its value from a row, and its kind.

    `kind` is `rate` for a success indicator (Wilson interval of the rate) or `mean` (t interval).
    """

    key: str
    label: str
    value: Callable[[dict], float | None]
    kind: str = "mean"


METRICS = (
    Metric("success_first", "success ep 1", lambda row: float(row["episode_successes"][0]), "rate"),
    Metric("success_last", "success last ep", lambda row: float(row["episode_successes"][-1]), "rate"),
    Metric("icl_gain_success", "ICL gain (success)", lambda row: row["icl_gain_success"]),
    Metric("icl_gain_return", "ICL gain (return)", lambda row: row["icl_gain_return"]),
    Metric("in_context_regret", "in-context regret", lambda row: row["in_context_regret"]),
    Metric("format_error_rate", "format errors", lambda row: row["format_error_rate"]),
    Metric("invalid_action_rate", "invalid actions", lambda row: row["invalid_action_rate"]),
    Metric("tokens_in", "tokens in", lambda row: row["tokens_in"]),
    Metric("tokens_out", "tokens out", lambda row: row["tokens_out"]),
    Metric("wall_time_s", "wall time (s)", lambda row: row["wall_time_s"]),
)
_METRIC = {metric.key: metric for metric in METRICS}
_LOWER_IS_BETTER = {"in_context_regret"}
#: The curve key of the suite-mean panel.
SUITE_MEAN = "suite mean"
#: Roles that are references: listed apart, never ranked.
REFERENCE_ROLES = ("oracle", "memoryless", "uniform")
# Config keys that name or place an agent without changing how it plays (as in evaluate's hash),
# plus the metadata evaluate records beside the config.
_NOT_BEHAVIOUR = ("name", "role", "envs", "exclude_envs", "batch_size", "metadata")
# References differing by less than this on an env cannot normalise it.
_DISTINCT = 1e-9


def metric_interval(metric: Metric, rows: list[dict]) -> Interval | None:
    """The metric over `rows`: a Wilson interval for rates, a t interval for means (None without values)."""
    values = [metric.value(row) for row in rows]
    if metric.kind == "rate":
        return proportion_interval(int(sum(values)), len(values))
    return t_interval(values)


def env_label(env_id: str, episodes: int) -> str:
    """Short column label: `icl/Mastermind-Medium-v0` with 3 episodes -> `Mastermind-Medium x3`."""
    stem = env_id.split("/", 1)[-1]
    stem = stem.rsplit("-v", 1)[0] if stem.rsplit("-v", 1)[-1].isdigit() else stem
    return f"{stem} x{episodes}"


# ----------------------------------------------------------------------------------------------- twins
def behaviour(config: dict) -> dict:
    """The keys of an agent config (as in `agents.json`) that change how it plays."""
    return {key: value for key, value in config.items() if key not in _NOT_BEHAVIOUR}


def memory_twin_behaviour(config: dict) -> dict | None:
    """The behaviour of `config`'s memoryless twin, or None when it has no memory to remove.

    A baseline's twin sets `memory: false`; a model agent's twin (any config with a `context` policy)
    sets `context: last_episode`, so only the current episode stays in its context.
    """
    if config.get("kind") == "baseline":
        return None if config.get("memory") is False else behaviour({**config, "memory": False})
    if "context" in config:
        return None if config["context"] == "last_episode" else behaviour({**config, "context": "last_episode"})
    return None


def pair_by_seed(first: list[dict], second: list[dict]) -> list[tuple[dict, dict]]:
    """Rows of two agents that played the same trial (env id, episodes and seed), in `first`'s order."""
    index = {row_key(row)[1:]: row for row in second}
    return [(row, index[row_key(row)[1:]]) for row in first if row_key(row)[1:] in index]


# ----------------------------------------------------------------------------------------------- tables
@dataclass
class AgentEntry:
    """One agent's line in a suite table, with its per-env results and per-episode curves."""

    key: str
    name: str
    role: str
    label: str
    envs_covered: int
    trials: int
    metrics: dict[str, Interval | None]
    per_env: dict[str, Interval | None]
    #: env label (and `SUITE_MEAN`) -> per-episode intervals of the suite's curve metric.
    curves: dict[str, list[Interval | None]]
    #: Normalised mean and interquartile mean over the envs with both references.
    normalised_mean: Interval | None = None
    normalised_iqm: Interval | None = None
    #: Key of the memoryless twin found among the suite's agents, and the gains over it.
    memory_twin: str | None = None
    memory_gain: Interval | None = None
    memory_gain_per_env: dict[str, Interval | None] = field(default_factory=dict)
    #: What `evaluate` recorded about the agent (path, parameters, decoding, commit).
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_reference(self) -> bool:
        """Oracle, memoryless or chance references are shown apart and never ranked."""
        return self.role in REFERENCE_ROLES


@dataclass(frozen=True)
class EnvReference:
    """An env's normalisation: the zero and one references' mean ranking metric (and per-episode curve)."""

    zero_agent: str
    one_agent: str
    zero: float
    one: float
    zero_curve: tuple[float, ...]
    one_curve: tuple[float, ...]

    def score(self, value: float) -> float:
        """The normalised value (0 = zero reference, 1 = oracle)."""
        return normalise(value, self.zero, self.one)


@dataclass
class SuiteTable:
    """A suite's table: its definition, the env references, and one entry per agent (ranked first)."""

    name: str
    description: str
    rank_by: str
    env_labels: list[str]
    entries: list[AgentEntry] = field(default_factory=list)
    references: dict[str, EnvReference] = field(default_factory=dict)
    #: (env id, episodes) of each env label, and the suite's trial seeds.
    envs: dict[str, tuple[str, int]] = field(default_factory=dict)
    seeds: frozenset[int] = frozenset()

    @property
    def normalised_ranking(self) -> bool:
        """Whether every env has both references, so contestants are ranked by the normalised mean."""
        return bool(self.env_labels) and all(label in self.references for label in self.env_labels)

    def ranks(self) -> list[int | None]:
        """Rank of each entry (1 = best), None for references and contestants that skipped an env."""
        ranks, next_rank = [], 1
        for entry in self.entries:
            if not entry.is_reference and entry.envs_covered == len(self.env_labels):
                ranks.append(next_rank)
                next_rank += 1
            else:
                ranks.append(None)
        return ranks

    @property
    def curve_metric(self) -> str:
        """What the curves show per episode: `regret` for regret-ranked suites, else `success`."""
        return "regret" if self.rank_by in _LOWER_IS_BETTER else "success"


def _curve(rows: list[dict], episodes: int, metric: str) -> list[Interval | None]:
    if metric == "success":
        return [metric_interval(Metric("", "", lambda row, k=k: float(row["episode_successes"][k]), "rate"), rows)
                for k in range(episodes)]
    return [t_interval([float(row["episode_regrets"][k]) for row in rows]) for k in range(episodes)]


def _rank_value(row: dict, rank_by: str) -> float:
    return float(_METRIC[rank_by].value(row))


def _by_env(rows: list[dict], envs: list[tuple[str, int]]) -> dict[str, list[dict]]:
    labels = {env: env_label(*env) for env in envs}
    grouped: dict[str, list[dict]] = {label: [] for label in labels.values()}
    for row in rows:
        grouped[labels[(row["env_id"], row["episodes"])]].append(row)
    return grouped


def _entry(key: str, rows: list[dict], envs: list[tuple[str, int]], rank_by: str, metadata: dict) -> AgentEntry:
    curve_metric = "regret" if rank_by in _LOWER_IS_BETTER else "success"
    per_env, curves = {}, {}
    for label, env_rows in _by_env(rows, envs).items():
        per_env[label] = metric_interval(_METRIC[rank_by], env_rows)
        if env_rows:
            curves[label] = _curve(env_rows, env_rows[0]["episodes"], curve_metric)
    longest = max(episodes for _, episodes in envs)
    long_rows = [row for row in rows if row["episodes"] == longest]
    if curve_metric == "success" and long_rows:
        # Suite mean per episode over the trials of the envs with the most episodes, so every point
        # averages the same envs (mixing in one-episode envs would move episode 1 alone).
        curves = {SUITE_MEAN: _curve(long_rows, longest, curve_metric), **curves}
    return AgentEntry(
        key=key,
        name=rows[0]["agent"],
        role=rows[0]["agent_role"],
        label=rows[0]["agent"],
        envs_covered=sum(bool(env_rows) for env_rows in _by_env(rows, envs).values()),
        trials=len(rows),
        metrics={metric.key: metric_interval(metric, rows) for metric in METRICS},
        per_env=per_env,
        curves=curves,
        metadata=metadata,
    )


def _references(by_agent: dict[str, list[dict]], entries: dict[str, AgentEntry], twins: dict[str, str],
                envs: list[tuple[str, int]], rank_by: str) -> dict[str, EnvReference]:
    """Per env label: the oracle as one, its memoryless twin (where it differs) or chance as zero."""
    oracles = sorted((entry for entry in entries.values() if entry.role == "oracle"), key=lambda e: (e.name != "oracle", e.key))
    if not oracles:
        return {}
    one = oracles[0].key
    chance = sorted((e.key for e in entries.values() if e.role == "uniform"), key=lambda k: (not k.startswith("uniform@"), k))
    candidates = ([twins[one]] if one in twins else []) + chance
    curve_column = "episode_regrets" if rank_by in _LOWER_IS_BETTER else "episode_successes"

    def means(key: str, label: str) -> tuple[float, tuple[float, ...]] | None:
        env_rows = _by_env(by_agent[key], envs)[label]
        if not env_rows:
            return None
        curve = np.mean([[float(value) for value in row[curve_column]] for row in env_rows], axis=0)
        return float(np.mean([_rank_value(row, rank_by) for row in env_rows])), tuple(float(v) for v in curve)

    references = {}
    for env in envs:
        label = env_label(*env)
        top = means(one, label)
        for zero in candidates if top is not None else []:
            bottom = means(zero, label)
            if bottom is not None and abs(bottom[0] - top[0]) > _DISTINCT:
                references[label] = EnvReference(entries[zero].label, entries[one].label, bottom[0], top[0], bottom[1], top[1])
                break
    return references


def _find_twins(keys: list[str], agents: dict[str, dict]) -> dict[str, str]:
    """Agent key -> its memoryless twin's key among `keys` (by config, else by the `<name>_memoryless` name)."""
    twins = {}
    for key in keys:
        config = agents.get(key)
        wanted = memory_twin_behaviour(config) if config else None
        match = [other for other in keys if other != key and wanted is not None and agents.get(other)
                 and behaviour(agents[other]) == wanted]
        if not match and config is None:
            name = key.split("@", 1)[0]
            match = [other for other in keys if other.split("@", 1)[0] == f"{name}_memoryless"]
        if match:
            twins[key] = sorted(match)[0]
    return twins


def _normalised(entry: AgentEntry, rows: list[dict], table: SuiteTable, twin_rows: list[dict] | None, envs) -> None:
    """Fill the entry's normalised mean and IQM, and its memory gains over `twin_rows`."""
    sign = -1.0 if table.rank_by in _LOWER_IS_BETTER else 1.0
    scores, gains = [], []
    for label, env_rows in _by_env(rows, envs).items():
        reference = table.references.get(label)
        if reference is not None:
            scores.append([reference.score(_rank_value(row, table.rank_by)) for row in env_rows])
        if twin_rows is None:
            continue
        pairs = pair_by_seed(env_rows, twin_rows)
        differences = [sign * (_rank_value(a, table.rank_by) - _rank_value(b, table.rank_by)) for a, b in pairs]
        entry.memory_gain_per_env[label] = t_interval(differences)
        if reference is not None:
            gains.append([reference.score(_rank_value(a, table.rank_by)) - reference.score(_rank_value(b, table.rank_by))
                          for a, b in pairs])
    entry.normalised_mean = mean_interval(scores)
    entry.normalised_iqm = iqm_interval(scores)
    entry.memory_gain = mean_interval(gains) if twin_rows is not None else None


def _sort_key(entry: AgentEntry, table: SuiteTable) -> tuple:
    if table.normalised_ranking and entry.normalised_mean is not None:
        value = -entry.normalised_mean.mean
    else:
        metric = entry.metrics.get(table.rank_by)
        value = math.inf if metric is None else (metric.mean if table.rank_by in _LOWER_IS_BETTER else -metric.mean)
    return (entry.is_reference, -entry.envs_covered, value, entry.label, entry.key)


def aggregate(rows: list[dict], suites: dict[str, dict], agents: dict[str, dict] | None = None) -> list[SuiteTable]:
    """One table per suite (in name order) with an entry per agent that has rows in it.

    Args:
        rows: results rows (`leaderboard.results`).
        suites: suite definitions (`suites.json`).
        agents: agent key -> its config as `evaluate` recorded it in `agents.json` (with `metadata`);
            it finds the memoryless twins. Without it twins are found by name (`<name>_memoryless`).
    """
    agents = agents or {}
    tables = []
    for name in sorted(suites):
        suite = suites[name]
        envs = [(env["id"], int(env["episodes"])) for env in suite["envs"]]
        members, seeds = set(envs), set(suite["seeds"])
        by_agent: dict[str, list[dict]] = {}
        for row in rows:
            if (row["env_id"], row["episodes"]) in members and row["seed"] in seeds:
                by_agent.setdefault(row_key(row)[0], []).append(row)
        if not by_agent:
            continue
        table = SuiteTable(name, suite.get("description", ""), suite["rank_by"], [env_label(*env) for env in envs])
        table.envs, table.seeds = {env_label(*env): env for env in envs}, frozenset(seeds)
        entries = {key: _entry(key, agent_rows, envs, table.rank_by, dict(agents.get(key, {}).get("metadata", {})))
                   for key, agent_rows in by_agent.items()}
        twins = _find_twins(list(by_agent), agents)
        table.references = _references(by_agent, entries, twins, envs, table.rank_by)
        for key, entry in entries.items():
            entry.memory_twin = twins.get(key)
            _normalised(entry, by_agent[key], table, by_agent.get(twins.get(key)), envs)
            entry.curves = _with_normalised_mean(entry, by_agent[key], table, envs)
        table.entries = list(entries.values())
        names = [entry.name for entry in table.entries]
        for entry in table.entries:
            if names.count(entry.name) > 1:
                entry.label = entry.key  # two configs under one name: show the hash too
        table.entries.sort(key=lambda entry: _sort_key(entry, table))
        tables.append(table)
    return tables


def _with_normalised_mean(entry: AgentEntry, rows: list[dict], table: SuiteTable, envs) -> dict:
    """Regret suites: a suite-mean panel of the per-episode normalised score (1 = the oracle's regret)."""
    if table.curve_metric != "regret":
        return entry.curves
    longest = max(episodes for _, episodes in envs)
    per_episode: list[list[float]] = [[] for _ in range(longest)]
    for label, env_rows in _by_env(rows, envs).items():
        reference = table.references.get(label)
        if reference is None or not env_rows or env_rows[0]["episodes"] != longest:
            continue
        for index in range(longest):
            zero, one = reference.zero_curve[index], reference.one_curve[index]
            if abs(zero - one) > _DISTINCT:
                per_episode[index] += [normalise(row["episode_regrets"][index], zero, one) for row in env_rows]
    if not any(per_episode):
        return entry.curves
    return {SUITE_MEAN: [t_interval(values) for values in per_episode], **entry.curves}


# ----------------------------------------------------------------------------------------------- text
def format_value(value: float) -> str:
    """Three significant digits, no exponent below a million (`0.0123`, `12.3`, `225`, `12,346`)."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 5e-13:
        return "0"  # a difference of floats that should cancel (1e-17) reads as zero
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.3g}"
    return "0" if text == "-0" else text


def format_interval(metric: Interval | None) -> str:
    """`mean ± half-width` for a t interval, `mean [low, high]` for the others; `mean` alone, `-` for none."""
    if metric is None:
        return "-"
    if metric.method == "t":
        if metric.count < 2:
            return format_value(metric.mean)
        half = (metric.high - metric.low) / 2
        return f"{format_value(metric.mean)} ± {format_value(half) if half >= 100 else f'{half:.2g}'}"
    return f"{format_value(metric.mean)} [{format_value(metric.low)}, {format_value(metric.high)}]"


def ranking_rule(table: SuiteTable) -> str:
    """The sentence that states how a table is sorted."""
    raw = "mean in-context regret (lower is better)" if table.rank_by in _LOWER_IS_BETTER else (
        "mean success at the last episode (higher is better)"
    )
    if table.normalised_ranking:
        metric = raw.split(" (")[0].removeprefix("mean ")
        rule = f"Ranked by the normalised score of {metric} (per env: 0 = memoryless or chance reference, 1 = oracle; higher first)"
    else:
        rule = f"Ranked by {raw} (not every env has both references, so no normalised ranking)"
    return rule + "; agents that skipped some of the suite's envs are listed after, unranked; references apart."


def metadata_text(metadata: dict) -> str:
    """One line of an agent's recorded metadata: path, parameters, decoding, context, commit."""
    parts = []
    if metadata.get("path"):
        parts.append(str(metadata["path"]))
    if metadata.get("parameters"):
        parts.append(f"{format_value(metadata['parameters'] / 1e6)}M params")
    for key in ("decoding", "context"):
        if metadata.get(key):
            parts.append(f"{key} {metadata[key]}" if key == "context" else str(metadata[key]))
    if metadata.get("commit"):
        commit = str(metadata["commit"])
        parts.append(f"commit {commit[:10]}{' (dirty)' if commit.endswith('-dirty') else ''}")
    return " · ".join(parts) or "-"


def table_rows(table: SuiteTable, references: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a suite's contestant table (or, with `references`, its reference table).

    Metrics no agent of the suite has (tokens, for baselines) are left out; the csv keeps every column.
    """
    entries = [(rank, entry) for rank, entry in zip(table.ranks(), table.entries, strict=True)
               if entry.is_reference == references]
    metrics = [metric for metric in METRICS if any(entry.metrics[metric.key] for entry in table.entries)]
    header = ["#", "agent", "role", "envs", "trials", "score (norm.)", "IQM (norm.)", "memory gain (norm.)"]
    header += [metric.label for metric in metrics]
    cells = [
        ["-" if rank is None else str(rank), entry.label, entry.role, f"{entry.envs_covered}/{len(table.env_labels)}"]
        + [str(entry.trials), format_interval(entry.normalised_mean), format_interval(entry.normalised_iqm)]
        + [format_interval(entry.memory_gain)]
        + [format_interval(entry.metrics[metric.key]) for metric in metrics]
        for rank, entry in entries
    ]
    return header, cells


def per_env_rows(table: SuiteTable, memory_gain: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the agent x env table of the ranking metric (or of its memory gain)."""
    header = ["agent"] + table.env_labels
    cells = []
    for entry in table.entries:
        values = entry.memory_gain_per_env if memory_gain else entry.per_env
        if memory_gain and not values:
            continue
        cells.append([entry.label] + [format_interval(values.get(label)) for label in table.env_labels])
    return header, cells
