"""`trainers.rollout` and `trainers.rewards` on the tiny model and real envs: token ids, masks, groups, fields."""

import gymnasium as gym
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents import tiny_model_path
from agents.chat_format import ChatFormat
from agents.context import DEFAULT_SYSTEM_PROMPT
from agents.hf_agent import HFAgent
from trainers import rewards
from trainers.orbit_config import EnvConfig
from trainers.rollout import OrbitRollout, TaskReplay, rollout_metrics, trial_fields
from trainers.tasks import TaskPool

# Short trials keep the test fast: 2 episodes x 4 pulls of the default bandit.
SHORT = EnvConfig(kwargs={"horizon": 4}, episodes=2, train_size=8, test_size=2)


class Recorder(gym.Wrapper):
    """Keeps every action the env received and every observation it returned."""

    def __init__(self, env):
        super().__init__(env)
        self.actions, self.observations = [], []

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.actions, self.observations = [], [observation]
        return observation, info

    def step(self, action):
        self.actions.append(action)
        result = self.env.step(action)
        self.observations.append(result[0])
        return result


class RecordingRollout(OrbitRollout):
    """The real rollout, with each env wrapped in a `Recorder` the test reads afterwards."""

    def build_group_envs(self, keys, step):
        envs, seeds, tasks = super().build_group_envs(keys, step)
        self.recorders = [Recorder(env) for env in envs]
        return self.recorders, seeds, tasks


@pytest.fixture(scope="module")
def policy():
    path = tiny_model_path()
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _rollout(policy, rollout_class=OrbitRollout, max_context_tokens=None, **kwargs):
    _, tokenizer = policy
    pool = TaskPool.from_config(SHORT)

    def make_agent(model):
        return HFAgent(model, tokenizer, max_new_tokens=3, max_context_tokens=max_context_tokens, seed=1)

    return pool, rollout_class(pool, make_agent, **kwargs)


def _runs(ids, mask, flag):
    """Maximal runs of ids whose mask equals `flag`, in order."""
    runs, current = [], []
    for token, value in zip(ids, mask, strict=True):
        if value == flag:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def test_agent_tokens_carry_loss_and_observation_tokens_do_not(policy):
    model, tokenizer = policy
    pool, rollout = _rollout(policy, rollout_class=RecordingRollout)
    keys = [task.key for task in pool.tasks("train")[:2] for _ in range(2)]
    output = rollout.play(model, keys, step=0)
    chat = ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT)
    end = chat.end_of_turn_id
    for row, recorder in enumerate(rollout.recorders):
        ids, mask, logprobs = output["completion_ids"][row], output["env_mask"][row], output["logprobs"][row]
        assert len(ids) == len(mask) == len(logprobs)
        # Every turn's sampled ids carry loss, and decode to exactly the action the env received.
        agent_runs = _runs(ids, mask, 1)
        assert len(agent_runs) == len(recorder.actions) == output["steps"][row]
        for sampled, action in zip(agent_runs, recorder.actions, strict=True):
            text = chat.decode(sampled[:-1] if sampled[-1] == end else sampled)
            assert text == action
        # Every masked run is an observation the env returned, as the chat template appends it, after the
        # end-of-turn id that closes a turn cut at max_new_tokens (the model did not sample that one).
        masked_runs = _runs(ids, mask, 0)
        observation_runs = []
        for turn, run in enumerate(masked_runs):
            if agent_runs[turn][-1] != end:
                assert run[0] == end
                run = run[1:]
            if run:
                observation_runs.append(run)
        expected = [chat.encode(chat.observation_text(text)) for text in recorder.observations[1:-1]]
        assert observation_runs == expected
        assert all(value < 0 for value, flag in zip(logprobs, mask, strict=True) if flag)
        assert all(value == 0 for value, flag in zip(logprobs, mask, strict=True) if not flag)
        # The prompt is the first observation rendered once; no prompt token is a loss target in TRL.
        assert tokenizer.decode(output["prompt_ids"][row]).count(recorder.observations[0]) == 1


def test_a_group_shares_the_hidden_task_but_not_the_randomness(policy):
    pool, rollout = _rollout(policy)
    task = pool.tasks("train")[0]
    envs, seeds, _ = rollout.build_group_envs([task.key] * 3, step=5)
    hidden = [env.reset(seed=seed)[1]["task"] for env, seed in zip(envs, seeds, strict=True)]
    assert hidden[0] == hidden[1] == hidden[2] == task.source.make().reset(seed=task.seed)[1]["task"]
    assert len(set(seeds)) == 3 and all(isinstance(env, TaskReplay) for env in envs)
    # A pure function of (task, step, index): a resumed run replays the same trials.
    assert rollout.build_group_envs([task.key] * 3, step=5)[1] == seeds
    assert rollout.build_group_envs([task.key] * 3, step=6)[1] != seeds


def test_extra_fields_feed_the_reward_functions(policy):
    model, _ = policy
    pool, rollout = _rollout(policy)
    keys = [task.key for task in pool.tasks("train")[:2] for _ in range(2)]
    output = rollout.play(model, keys, step=0)
    for name in ("episode_successes", "episode_returns", "episode_regrets", "in_context_regret", "excluded"):
        assert len(output[name]) == 4
    assert all(len(value) == 2 for value in output["episode_successes"])  # two episodes per trial
    kwargs = {name: output[name] for name in output if name not in ("prompt_ids", "completion_ids", "logprobs")}
    assert rewards.successes([None] * 4, **kwargs) == [float(sum(value)) for value in output["episode_successes"]]
    assert rewards.negative_regret([None] * 4, **kwargs) == [-value for value in output["in_context_regret"]]
    assert rewards.episode_return([None] * 4, **kwargs) == [sum(value) for value in output["episode_returns"]]


def test_token_budget_truncates_and_mask_truncated_excludes(policy):
    model, tokenizer = policy
    keys = [TaskPool.from_config(SHORT).tasks("train")[0].key] * 2
    prompt_length = len(ChatFormat(tokenizer, DEFAULT_SYSTEM_PROMPT).prompt_ids(
        [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": "x"}]))
    budget = prompt_length + 40  # a few turns, far from the trial's 8 pulls
    for mask_truncated in (False, True):
        _, rollout = _rollout(policy, max_context_tokens=budget, mask_truncated=mask_truncated)
        output = rollout.play(model, keys, step=0)
        assert all(output["truncated"])
        assert all(len(p) + len(c) <= budget for p, c in zip(output["prompt_ids"], output["completion_ids"], strict=True))
        # Unplayed episodes are failures charged the oracle's regret: ending early never pays.
        assert all(len(value) == 2 and not value[-1] for value in output["episode_successes"])
        kwargs = {name: output[name] for name in ("episode_successes", "excluded")}
        if mask_truncated:
            assert all(sum(mask) == 0 for mask in output["env_mask"])
            assert rewards.successes([None] * 2, **kwargs) == [None, None]
        else:
            assert all(sum(mask) > 0 for mask in output["env_mask"])
            assert None not in rewards.successes([None] * 2, **kwargs)


def test_unplayed_episodes_count_the_oracle_regret():
    from agents.tokens import TokenTrial

    trial = TokenTrial(truncated=True, record={
        "episode_successes": [True], "episode_returns": [3.0], "episode_regrets": [0.5],
        "format_errors": 1, "steps": 5})
    fields = trial_fields(trial, episodes=3, oracle_per_episode=15.0)
    # 0.5 played + 2 unplayed episodes x the oracle's 15 per episode.
    assert fields["in_context_regret"] == 30.5
    assert fields["episode_successes"] == [True, False, False]
    metrics = rollout_metrics([fields])
    assert metrics["rollout/episode_3/regret"] == 15.0 and metrics["rollout/format_error_rate"] == 0.2
