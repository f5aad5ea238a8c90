"""The results file: rows from real trials, durable appends, torn lines, corrupt lines, the writer lock."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import agents
import envs  # noqa: F401
from leaderboard.results import RESULTS_FILE, ResultsFile, make_row, read_rows, row_key


def _real_row(seed: int, episodes: int = 3, **record_changes) -> dict:
    env = gym.make("icl/BernoulliBandit-Meta-v0", episodes=episodes)
    record = agents.play_trial(env, agents.baseline("thompson", "icl/BernoulliBandit-Meta-v0"), seed=seed)
    record.update(record_changes)
    return make_row(
        agent="thompson", agent_hash="abcd1234", agent_role="agent", suite="bandits", env_id="icl/BernoulliBandit-Meta-v0",
        episodes=episodes, env_kwargs={}, seed=seed, record=record, wall_time_s=0.01,
    )


def test_row_from_a_real_trial():
    row = _real_row(seed=3)
    assert row_key(row) == ("thompson@abcd1234", "icl/BernoulliBandit-Meta-v0", 3, 3)
    assert len(row["episode_successes"]) == len(row["episode_returns"]) == len(row["episode_regrets"]) == 3
    assert row["steps"] == 60 and row["episodes_played"] == 3  # 3 episodes of 20 pulls
    assert row["icl_gain_return"] == row["episode_returns"][-1] - row["episode_returns"][0]
    assert row["in_context_regret"] == pytest.approx(sum(row["episode_regrets"]))
    assert row["format_error_rate"] == 0.0 and row["tokens_in"] is None
    json.dumps(row)


def test_unplayed_episodes_are_failures_charged_the_oracle():
    # A trial cut after its first episode: episodes 2 and 3 count as failed, with the per-episode oracle as regret.
    row = _real_row(seed=4)
    cut = _real_row(seed=4, episode_successes=[True], episode_returns=[15.0], episode_regrets=[1.0])
    assert cut["episodes_played"] == 1
    assert cut["episode_successes"] == [True, False, False]
    assert cut["episode_returns"] == [15.0, 0.0, 0.0]
    assert cut["episode_regrets"][1:] == [row["oracle_return"] / 3] * 2
    assert cut["icl_gain_success"] == -1.0


def test_append_reopen_and_no_duplicates(tmp_path):
    rows = [_real_row(seed) for seed in range(3)]
    with ResultsFile(tmp_path) as results:
        assert results.extend(rows) == 3
        assert results.append(rows[0]) is False  # same key: never written twice
    with ResultsFile(tmp_path) as results:
        assert set(results.rows) == {row_key(row) for row in rows}
        assert results.append(_real_row(seed=9)) is True
    assert [row["seed"] for row in read_rows(tmp_path / RESULTS_FILE)] == [0, 1, 2, 9]


def test_torn_last_line_is_dropped_on_reopen(tmp_path):
    rows = [_real_row(seed) for seed in range(2)]
    with ResultsFile(tmp_path) as results:
        results.extend(rows)
    path = tmp_path / RESULTS_FILE
    complete = path.read_bytes()
    # A kill in the middle of a write: part of a third row and no newline.
    path.write_bytes(complete + json.dumps(_real_row(seed=5)).encode()[:70])
    assert len(read_rows(path)) == 2
    with pytest.warns(UserWarning, match="torn last line"), ResultsFile(tmp_path) as results:
        assert len(results.rows) == 2
    assert path.read_bytes() == complete


def test_corrupt_middle_line_names_the_line(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_text(json.dumps(_real_row(0)) + "\n{not json\n" + json.dumps(_real_row(1)) + "\n")
    with pytest.raises(ValueError, match=r"results.jsonl:2 is not a JSON row"):
        ResultsFile(tmp_path)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("[]", "it is a JSON list, not a row object"),  # raised AttributeError
        ("123", "it is a JSON int, not a row object"),
        ('"row"', "it is a JSON str, not a row object"),
        ("null", "it is a JSON NoneType, not a row object"),
        ("{}", "it has no schema_version"),  # said "schema version None"
        ('{"schema_version": 1}', r"it lacks the key\(s\) agent, agent_hash, env_id, episodes, seed"),  # KeyError
        ('{"schema_version": 1, "agent": "a", "agent_hash": "h", "env_id": "e", "episodes": "3", "seed": 1}',
         r"key\(s\) episodes have the wrong type"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["list", "int", "string", "null", "empty", "version-only", "wrong-type", "deep"],
)
def test_a_line_that_is_not_a_row_names_the_file_line_and_fix(tmp_path, line, problem):
    path = tmp_path / RESULTS_FILE
    path.write_text(json.dumps(_real_row(0)) + "\n" + line + "\n" + json.dumps(_real_row(1)) + "\n")
    for read in (read_rows, lambda _: ResultsFile(tmp_path)):
        with pytest.raises(ValueError, match=rf"results.jsonl:2 is not a .*{problem}.*remove that line, then rerun"):
            read(path)
    path.write_text(json.dumps(_real_row(0)) + "\n")
    ResultsFile(tmp_path).close()  # the refusal released the writer lock


def test_other_schema_version_is_refused(tmp_path):
    (tmp_path / RESULTS_FILE).write_text(json.dumps(dict(_real_row(0), schema_version=0)) + "\n")
    with pytest.raises(ValueError, match="schema version 0"):
        ResultsFile(tmp_path)


def test_second_writer_is_refused(tmp_path):
    with ResultsFile(tmp_path):
        with pytest.raises(RuntimeError, match="another evaluation is writing"):
            ResultsFile(tmp_path)
    ResultsFile(tmp_path).close()  # released on close
