"""Aggregation, intervals, the ranking rule and the json/csv/md outputs, on hand-built rows and on a real run."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from leaderboard.render import aggregate, interval, load, render, t_quantile, to_csv, to_json, to_markdown
from leaderboard.results import make_row


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


def test_t_quantile_matches_the_t_table():
    # Two-sided 95% critical values from any t table.
    for degrees, expected in ((1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042), (1000, 1.962)):
        assert t_quantile(degrees) == pytest.approx(expected, abs=2e-3)


def test_interval_on_hand_values():
    # [1, 2, 3]: mean 2, sample sd 1, half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.484.
    result = interval([1.0, 2.0, 3.0])
    assert result.mean == 2.0 and result.count == 3
    assert result.high - result.mean == pytest.approx(4.3027 / math.sqrt(3), abs=1e-3)
    assert interval([7.0]).low == interval([7.0]).high == 7.0
    assert interval([]) is None and interval([None, None]) is None


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
    assert "| 1 | strong | agent | 2/2 | 4 |" in markdown and "| - | partial | agent | 1/2 | 1 |" in markdown
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
    oracle = next(a for a in document["suites"]["small-regret"]["agents"] if a["agent"] == "oracle")
    # The oracle knows the hidden arms: zero regret and success in every episode.
    assert oracle["metrics"]["in_context_regret"]["mean"] == 0.0 and oracle["rank"] == 1
    assert [point["mean"] for point in oracle["curves"]["BernoulliBandit-Meta x3"]] == [0.0, 0.0, 0.0]


def test_render_is_byte_identical_when_repeated(small_leaderboard, tmp_path):
    results_dir, site = small_leaderboard
    again = tmp_path / "again"
    render([results_dir], again)
    for path in site.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
