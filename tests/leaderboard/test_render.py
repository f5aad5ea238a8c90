"""Aggregation, normalisation, memory twins, paired comparisons, the ranking rule and the json/csv/md outputs,
on hand-built rows and on a real run."""

from __future__ import annotations

import csv
import io
import json

import pytest

from leaderboard.render import (
    compare,
    compare_markdown,
    load,
    main,
    render,
    summary_markdown,
    to_csv,
    to_json,
    to_markdown,
)
from leaderboard.results import make_row
from leaderboard.tables import aggregate


def _row(agent: str, env_id: str, seed: int, successes: list[bool], regrets: list[float], role: str = "agent") -> dict:
    record = {
        "episode_successes": successes,
        "episode_returns": [float(s) for s in successes],
        "episode_regrets": regrets,
        "oracle_return": float(len(successes)),
        "in_context_regret": float(sum(regrets)),
        "steps": 10,
        "format_errors": 1,
        "invalid_actions": 0,
    }
    return make_row(
        agent=agent, agent_hash="00000000", agent_role=role, suite="s", env_id=env_id, episodes=len(successes),
        env_kwargs={}, seed=seed, record=record, wall_time_s=0.5,
    )


SUITE = {"s": {"name": "s", "description": "d", "rank_by": "success_last", "seeds": [0, 1], "envs": [
    {"id": "icl/A-Easy-v0", "episodes": 2, "kwargs": {}}, {"id": "icl/B-Easy-v0", "episodes": 2, "kwargs": {}}]}}


def test_aggregate_ranks_full_coverage_first_and_computes_metrics():
    rows = [
        # "strong" plays both envs: last-episode success 1, 1, 0, 1 -> mean 0.75; first episode 0, 1, 0, 0 -> 0.25.
        _row("strong", "icl/A-Easy-v0", 0, [False, True], [1.0, 0.0]),
        _row("strong", "icl/A-Easy-v0", 1, [True, True], [0.0, 0.0]),
        _row("strong", "icl/B-Easy-v0", 0, [False, False], [1.0, 1.0]),
        _row("strong", "icl/B-Easy-v0", 1, [False, True], [1.0, 0.0]),
        # "partial" is perfect but only on env A: listed after, unranked.
        _row("partial", "icl/A-Easy-v0", 0, [True, True], [0.0, 0.0]),
        # "weak" plays both envs and never succeeds.
        _row("weak", "icl/A-Easy-v0", 0, [False, False], [1.0, 1.0]),
        _row("weak", "icl/B-Easy-v0", 0, [False, False], [1.0, 1.0]),
        # Rows outside the suite (another episode count, another seed block) are ignored.
        _row("weak", "icl/A-Easy-v0", 0, [False], [1.0]),
        _row("strong", "icl/A-Easy-v0", 300, [False, False], [1.0, 1.0]),
    ]
    [table] = aggregate(rows, SUITE)
    assert [entry.name for entry in table.entries] == ["strong", "weak", "partial"]
    assert table.ranks() == [1, 2, None]
    strong = table.entries[0]
    assert strong.metrics["success_last"].mean == 0.75
    assert strong.metrics["success_last"].method == "wilson" and strong.metrics["in_context_regret"].method == "t"
    assert strong.metrics["success_first"].mean == 0.25
    assert strong.metrics["icl_gain_success"].mean == 0.5
    assert strong.metrics["in_context_regret"].mean == 1.0  # (1 + 0 + 2 + 1) / 4
    assert strong.metrics["format_error_rate"].mean == 0.1  # 1 format error in 10 steps
    assert strong.metrics["tokens_in"] is None
    # Curves: per env per episode, and the suite mean over all trials of the (equally long) envs.
    assert [point.mean for point in strong.curves["A-Easy x2"]] == [0.5, 1.0]
    assert [point.mean for point in strong.curves["B-Easy x2"]] == [0.0, 0.5]
    assert [point.mean for point in strong.curves["suite mean"]] == [0.25, 0.75]

    markdown = to_markdown([table])
    assert "| 1 | strong | agent | 2/2 | 4 |" in markdown and "0.75 [0.301, 0.954]" in markdown  # Wilson 3/4 and "| - | partial | agent | 1/2 | 1 |" in markdown
    assert "tokens in" not in markdown  # no agent has tokens: the column is left out
    lines = list(csv.DictReader(io.StringIO(to_csv([table]))))
    assert [line["agent"] for line in lines] == ["strong", "weak", "partial"]
    assert [line["rank"] for line in lines] == ["1", "2", ""]
    assert float(lines[0]["success_last_mean"]) == 0.75 and lines[0]["tokens_in_mean"] == ""
    document = to_json([table])
    assert document["suites"]["s"]["agents"][0]["metrics"]["success_last"]["mean"] == 0.75
    json.dumps(document)  # JSON-ready


def test_regret_suites_rank_lower_first():
    suite = {"s": dict(SUITE["s"], rank_by="in_context_regret")}
    rows = [_row("low", "icl/A-Easy-v0", 0, [True, True], [0.5, 0.0]), _row("high", "icl/A-Easy-v0", 0, [True, True], [3.0, 2.0])]
    rows += [_row(row["agent"], "icl/B-Easy-v0", 0, [True, True], [0.0, 0.0]) for row in rows]
    [table] = aggregate(rows, suite)
    assert [entry.name for entry in table.entries] == ["low", "high"]
    # No oracle and no chance agent: no references, so no normalised score and no suite-mean panel.
    assert not table.references and not table.normalised_ranking and table.entries[0].normalised_mean is None
    assert table.curve_metric == "regret" and "suite mean" not in table.entries[0].curves


def test_load_deduplicates_rows_across_directories(small_leaderboard, tmp_path):
    results_dir, _ = small_leaderboard
    rows_once, suites = load([results_dir])
    with pytest.warns(UserWarning, match="duplicate"):
        rows_twice, _ = load([results_dir, results_dir])
    assert rows_twice == rows_once
    assert set(suites) == {"small-regret", "small-success"}
    with pytest.raises(FileNotFoundError, match="results.jsonl"):
        load([tmp_path])


def test_render_outputs_agree(small_leaderboard):
    _, site = small_leaderboard
    for name in ("leaderboard.json", "leaderboard.csv", "leaderboard.md", "index.html"):
        assert (site / name).stat().st_size > 0
    document = json.loads((site / "leaderboard.json").read_text())
    lines = list(csv.DictReader((site / "leaderboard.csv").open()))
    for line in lines:
        agent = next(a for a in document["suites"][line["suite"]]["agents"] if a["key"] == line["agent_key"])
        assert float(line["in_context_regret_mean"]) == pytest.approx(agent["metrics"]["in_context_regret"]["mean"], rel=1e-5)
    suite = document["suites"]["small-regret"]
    oracle = next(a for a in suite["agents"] if a["agent"] == "oracle")
    # The oracle knows the hidden arms: zero regret and success in every episode. It is a reference:
    # never ranked, normalised to 1. The memoryless oracle does as well on bandits, so chance is the zero.
    assert oracle["metrics"]["in_context_regret"]["mean"] == 0.0 and oracle["rank"] is None and oracle["reference"]
    assert oracle["normalised_mean"]["mean"] == 1.0
    assert {ref["zero_agent"] for ref in suite["references"].values()} == {"uniform"}
    ranked = [a["agent"] for a in suite["agents"] if a["rank"] is not None]
    assert ranked == ["thompson"]  # linucb skipped an env; the rest are references
    thompson = suite["agents"][0]
    assert thompson["memory_twin"].startswith("thompson_memoryless@") and thompson["metadata"]["path"] == "baseline thompson"
    assert thompson["metadata"]["commit"]  # the evaluating checkout's commit
    # Thompson's memory gain is its normalised score minus its twin's, over the same seeds.
    twin = next(a for a in suite["agents"] if a["agent"] == "thompson_memoryless")
    gain = thompson["normalised_mean"]["mean"] - twin["normalised_mean"]["mean"]
    assert thompson["memory_gain"]["mean"] == pytest.approx(gain, abs=1e-5)
    assert [point["mean"] for point in oracle["curves"]["BernoulliBandit-Meta x3"]] == [0.0, 0.0, 0.0]
    assert [point["method"] for point in oracle["curves"]["BernoulliBandit-Meta x3"]] == ["t"] * 3
    # Regret suites get a suite-mean panel of the normalised per-episode score (the oracle's is 1).
    assert list(oracle["curves"])[0] == "suite mean"
    assert [point["mean"] for point in oracle["curves"]["suite mean"]] == [1.0, 1.0, 1.0]
    assert [point["mean"] for point in oracle["curves"]["suite mean"]] == [1.0, 1.0, 1.0]


def test_render_is_byte_identical_when_repeated(small_leaderboard, tmp_path):
    results_dir, site = small_leaderboard
    again = tmp_path / "again"
    render([results_dir], again)
    for path in site.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def _normalisation_rows() -> list[dict]:
    """The success suite SUITE (envs A and B, seeds 0 and 1), last-episode successes per (env, seed):

    oracle           A 1 1   B 1 1   (the one reference)
    oracle_memoryless A 0 0  B 1 1   (the zero reference of A; on B it ties the oracle, so B falls to chance)
    uniform          A 0 0   B 1 0   (chance: the zero reference of B, mean 0.5)
    strong           A 1 0   B 1 1
    weak             A 0 0   B 1 0
    strong_memoryless A 0 0  B 1 0   (strong's twin, found by name: these rows have no agents.json)
    """
    table = {
        ("oracle", "oracle"): ([1, 1], [1, 1]),
        ("oracle_memoryless", "memoryless"): ([0, 0], [1, 1]),
        ("uniform", "uniform"): ([0, 0], [1, 0]),
        ("strong", "agent"): ([1, 0], [1, 1]),
        ("weak", "agent"): ([0, 0], [1, 0]),
        ("strong_memoryless", "memoryless"): ([0, 0], [1, 0]),
    }
    rows = []
    for (agent, role), (env_a, env_b) in table.items():
        for env_id, lasts in (("icl/A-Easy-v0", env_a), ("icl/B-Easy-v0", env_b)):
            for seed, last in enumerate(lasts):
                rows.append(_row(agent, env_id, seed, [False, bool(last)], [1.0, 1.0 - last], role=role))
    return rows


def test_normalised_scores_memory_gain_and_ranking_by_hand():
    [table] = aggregate(_normalisation_rows(), SUITE)
    assert table.references["A-Easy x2"].zero_agent == "oracle_memoryless"
    assert table.references["B-Easy x2"].zero_agent == "uniform" and table.references["B-Easy x2"].zero == 0.5
    assert table.normalised_ranking
    entries = {entry.name: entry for entry in table.entries}
    # strong: A scores (v - 0) / 1 = [1, 0]; B scores (v - 0.5) / 0.5 = [1, 1]. Mean 0.75; IQM of
    # [0, 1, 1, 1] keeps the middle two, [1, 1] -> 1.
    strong = entries["strong"]
    assert strong.normalised_mean.mean == 0.75 and strong.normalised_iqm.mean == 1.0
    assert strong.normalised_mean.method == "bootstrap" and strong.normalised_mean.low <= 0.75 <= strong.normalised_mean.high
    # weak: A [0, 0], B [1, -1] -> mean 0.
    assert entries["weak"].normalised_mean.mean == 0.0
    # Memory gain of strong over strong_memoryless (same seeds): A [1, 0] and B [0, 1] in success;
    # normalised A [1, 0], B [1 - 1, 1 - (-1)] = [0, 2] -> mean 0.75.
    assert strong.memory_twin == "strong_memoryless@00000000"
    assert strong.memory_gain_per_env["A-Easy x2"].mean == 0.5 and strong.memory_gain_per_env["B-Easy x2"].mean == 0.5
    assert strong.memory_gain.mean == 0.75
    assert entries["weak"].memory_twin is None and entries["weak"].memory_gain is None
    # Contestants ranked first; references apart and unranked.
    assert [entry.name for entry in table.entries][:2] == ["strong", "weak"] and table.ranks()[:2] == [1, 2]
    assert all(rank is None for rank in table.ranks()[2:]) and all(entry.is_reference for entry in table.entries[2:])
    assert "0.75 [" in summary_markdown([table]).splitlines()[3]  # strong's line of the evaluate summary


def test_memory_twin_is_found_by_config_for_model_agents():
    rows = [row for row in _normalisation_rows() if row["agent"] in ("oracle", "uniform", "strong", "weak")]
    for row in rows:  # rename: only the recorded configs can tell that "weak" is strong's twin
        row["agent"] = {"strong": "model", "weak": "other"}.get(row["agent"], row["agent"])
    model = {"name": "model", "kind": "hf", "model": "/m", "context": "full", "temperature": 1.0, "batch_size": 16,
             "metadata": {"path": "/m", "parameters": 1000}}
    agents = {"model@00000000": model, "other@00000000": {**model, "name": "other", "context": "last_episode", "batch_size": 4}}
    [table] = aggregate(rows, SUITE, agents)
    entries = {entry.name: entry for entry in table.entries}
    assert entries["model"].memory_twin == "other@00000000" and entries["model"].memory_gain.mean == 0.75
    assert entries["model"].metadata["parameters"] == 1000
    assert entries["other"].memory_twin is None  # last_episode has no memory left to remove


def test_paired_comparison_on_constructed_rows():
    rows = _normalisation_rows()
    tables = aggregate(rows, SUITE)
    result = compare(tables, rows, "strong", "weak")["s"]
    # Per env, strong - weak in last-episode success: A [1, 0] - [0, 0] -> [1, 0]: mean 0.5, sd 0.7071,
    # half-width t(0.975, 1) * 0.7071 / sqrt(2) = 12.706 / 2 = 6.353. B [1, 1] - [1, 0] -> [0, 1], the same.
    for label in ("A-Easy x2", "B-Easy x2"):
        difference = result["per_env"][label]["difference"]
        assert result["per_env"][label]["pairs"] == 2 and difference["mean"] == 0.5
        assert difference["ci_high"] - 0.5 == pytest.approx(6.3531, abs=1e-3)
    # Suite, normalised: A [1, 0], B [1 - 1, 1 - (-1)] = [0, 2] -> 0.75 (stratified bootstrap interval).
    assert result["suite"]["mean"] == 0.75 and result["suite"]["method"] == "bootstrap"
    assert "| suite (normalised, 2 envs) | 4 |" in compare_markdown({"s": result})
    # The same agent twice differs by exactly zero; unknown agents are a clear error.
    assert compare(tables, rows, "strong", "strong")["s"]["suite"]["mean"] == 0.0
    with pytest.raises(ValueError, match="no trial in common"):
        compare(tables, rows, "strong", "nobody")


def test_compare_cli_on_a_real_run(small_leaderboard, capsys):
    results_dir, _ = small_leaderboard
    assert main([str(results_dir), "--compare", "thompson", "thompson_memoryless"]) == 0
    printed = capsys.readouterr().out
    assert "## small-regret: thompson@" in printed and "## small-success: thompson@" in printed
    assert "| BernoulliBandit-Meta x3 | 6 |" in printed  # the six seeds both played
    assert main([str(results_dir), "--compare", "thompson", "nobody"]) == 2
    assert "no trial in common" in capsys.readouterr().err


def test_evaluate_prints_the_summary_table(small_leaderboard, tmp_path, capsys):
    from tests.leaderboard.conftest import evaluate_agent, small_suites

    evaluate_agent("uniform", small_suites()[1], tmp_path)
    printed = capsys.readouterr().out
    assert "small-success: Ranked by" in printed
    assert "| - | uniform | uniform | 6 |" in printed  # a reference: listed, not ranked


def test_page_and_render_import_no_circle():
    import subprocess
    import sys

    # page.py needs the tables, not render.py (render imports page to write it): one-way arrows.
    code = "import sys, leaderboard.page; print('leaderboard.render' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_committed_tiny_model_rows_render(tmp_path):
    from pathlib import Path

    rows_dir = Path(__file__).resolve().parents[2] / "leaderboard" / "site" / "tiny-models"
    [table] = render([rows_dir], tmp_path)
    entries = {entry.name: entry for entry in table.entries}
    assert table.name == "tiny-bandit" and set(entries) == {
        "tiny-imitation", "tiny-imitation_memoryless", "tiny-orbit", "tiny-orbit_memoryless"}
    orbit = entries["tiny-orbit"]
    assert orbit.trials == 50 and orbit.memory_twin.startswith("tiny-orbit_memoryless@")
    assert orbit.metadata["parameters"] > 0 and orbit.metadata["path"] == "outputs/tiny-orbit/final"
    # Memory helps the trained model: its regret is lower than its twin's on the same seeds.
    assert orbit.memory_gain_per_env["BernoulliBandit-Meta x3"].low > 0
