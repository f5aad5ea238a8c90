"""`python -m trainers.orbit` as a regular Hydra app: a 2-point sweep on an installed package's env, logged to
Trackio and read back; config errors (issue 16 items 10-11) exit 2 with one message, in both command lines."""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path

import pytest
import yaml

from configs import cli
from leaderboard import evaluate as leaderboard_evaluate
from tests.plugin_demo import PLUGIN_ID, install_plugin, run_with_plugin
from trainers import compress, orbit, soda
from trainers.orbit_config import OrbitConfig, load_config

# One GRPO step of 2 groups x 2 trials on 2-episode trials, no imitation, 2 held-out trials: seconds per run.
TINY = ["train.init=none", "train.max_steps=1", "env.test_size=2", "train.tasks_per_step=2", "train.num_generations=2",
        "train.eval_trials=2", "train.eval_greedy=false", "train.eval_every=1", "train.save_every=1",
        "train.cpu_threads=1"]


def test_a_two_point_sweep_trains_an_installed_env_and_logs_to_trackio(tmp_path):
    site = install_plugin(tmp_path / "plugin")
    sweep, tracker = tmp_path / "sweep", tmp_path / "trackio"
    result = run_with_plugin(site, "-m", "trainers.orbit", "-m", f"env={PLUGIN_ID}", "train.seed=0,1", *TINY,
                             "train.report_to=trackio", "train.extra.project=orbit-cli-test",
                             f"hydra.sweep.dir={sweep}", "hydra/launcher=basic", timeout=600, TRACKIO_DIR=str(tracker))
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):  # one directory per point, each a complete run on the package's env
        rows = [json.loads(line) for line in (sweep / job / "metrics.jsonl").read_text().splitlines()]
        assert any(row["phase"] == "train" and "train/loss" in row for row in rows)
        assert (sweep / job / "final" / "model.safetensors").is_file()
        assert yaml.safe_load((sweep / job / "final" / "orbit_config.yaml").read_text())["env"]["id"] == PLUGIN_ID
    seeds = [yaml.safe_load((sweep / job / "final" / "orbit_config.yaml").read_text())["train"]["seed"] for job in "01"]
    assert seeds == [0, 1]
    # Trackio's local store holds both runs, with TRL's train metrics and the held-out evaluations.
    code = ("import json; from trackio.sqlite_storage import SQLiteStorage as S; p = 'orbit-cli-test'; "
            "print(json.dumps({run: S.get_logs(p, run) for run in S.get_runs(p)}))")
    stored = json.loads(run_with_plugin(site, "-c", code, TRACKIO_DIR=str(tracker)).stdout)
    assert len(stored) == 2
    tracked = []
    for logs in stored.values():
        losses = [log["train/loss"] for log in logs if "train/loss" in log]
        assert len(losses) == 1  # one optimizer step
        tracked.append([log["eval/in_context_regret"] for log in logs if "eval/in_context_regret" in log])
    logged = []  # the same held-out values as each run's metrics.jsonl (evaluated before and after the step)
    for job in ("0", "1"):
        rows = [json.loads(line) for line in (sweep / job / "metrics.jsonl").read_text().splitlines()]
        logged.append([row["eval/in_context_regret"] for row in rows if row["phase"] == "eval"])
    assert sorted(tracked) == sorted(logged) and all(len(values) == 2 for values in logged)


def _run_cli(monkeypatch, capsys, main, arguments):
    monkeypatch.setattr(sys, "argv", ["prog", *arguments])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("main", "arguments", "message"), [
    # Item 10: unknown keys, `+` ones included, are refused with the closest valid name.
    (leaderboard_evaluate.main, ["+trails=3"], "unknown key `trails`; did you mean `trials`?"),
    (leaderboard_evaluate.main, ["agent=hf", "agent.model=/m", "+agent.temprature=0.5"],
     "unknown key `agent.temprature`; did you mean `agent.temperature`?"),
    (leaderboard_evaluate.main, ["agent=thompsn"], "did you mean agent=thompson?"),
    (orbit.main, ["+train.lrr=0.1"], "unknown key `train.lrr`; did you mean `train.lr`?"),
    (orbit.main, ["train.extra.top_pp=0.9"], "did you mean `train.extra.top_p`?"),
    # Item 11: numbers finite and in range, a named output directory, env ids resolved at start-up.
    (orbit.main, ["train.lr=inf"], "train.lr=inf must be a finite number"),
    (orbit.main, ["train.temperature=inf"], "train.temperature=inf must be a finite number"),
    (orbit.main, ["output_dir="], "output_dir is empty"),
    (orbit.main, ["train.seed=-1"], "train.seed=-1 must be >= 0"),
    (orbit.main, ["env=icl/BernoulliBandit-Mta-v0"], "Did you mean: `BernoulliBandit-Meta`?"),
    (leaderboard_evaluate.main, ["trials=-1"], "evaluate.trials must be > 0"),
    (leaderboard_evaluate.main, ["agent=hf", "agent.model=/m", "agent.temperature=inf"], "agent.temperature=inf"),
    (leaderboard_evaluate.main, ["suite.envs=[{id: icl/Nope-v0}]"], "not registered"),
    # The seed methods' command lines compose their configs the same way.
    (soda.main, ["teacher.path=/t", "+train.lrr=0.1"], "unknown key `train.lrr`; did you mean `train.lr`?"),
    (soda.main, ["teacher.path=/t", "train.lr=nan"], "train.lr=nan must be"),
    (compress.main, ["method=nope"], "method='nope'; allowed: prune, int8, prune+int8"),
])
def test_both_command_lines_refuse_a_bad_config_with_one_message_and_exit_2(monkeypatch, capsys, main, arguments,
                                                                            message):
    code, stderr = _run_cli(monkeypatch, capsys, main, arguments)
    assert code == cli.EXIT_CONFIG_ERROR
    assert message in stderr and "Traceback" not in stderr
    assert sum(line.startswith("python -m ") for line in stderr.splitlines()) == 1  # one `<prog>: error:` line


def test_hydra_full_error_shows_the_traceback(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "+trails=3"])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(cli.ConfigError, match="did you mean `trials`"):
        leaderboard_evaluate.main()


def _float_fields(schema: type, prefix: str = "") -> list[str]:
    """Dotted paths of every float field under `schema` (walked, so fields others add are covered too)."""
    paths, hints = [], typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        annotation = hints[field.name]
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)] or [annotation]
        if float in options:
            paths.append(prefix + field.name)
        elif len(options) == 1 and dataclasses.is_dataclass(options[0]):
            paths += _float_fields(options[0], f"{prefix}{field.name}.")
    return paths


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_every_float_key_of_the_trainer_refuses_non_finite_values(value):
    paths = _float_fields(OrbitConfig)
    assert {"train.lr", "train.temperature", "train.max_grad_norm"} <= set(paths)
    for path in paths:
        with pytest.raises(ValueError, match=rf"{path.split('.')[-1]}"):
            load_config([f"{path}={value}"])


def test_output_dir_follows_hydra_run_dir(tmp_path, monkeypatch):
    """`hydra.run.dir=<dir>` puts the run there (no `output_dir=`): checked up to the first config check."""
    seen = {}
    monkeypatch.setattr(orbit, "_train_and_time", lambda config: seen.setdefault("output_dir", config.output_dir))
    monkeypatch.setattr(sys, "argv", ["prog", f"hydra.run.dir={tmp_path / 'run'}"])
    orbit.main()
    assert Path(seen["output_dir"]) == tmp_path / "run"
