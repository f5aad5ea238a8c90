"""The bandit family: Bernoulli, Gaussian, best-arm identification, prior-structured and linear contextual."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = [
    "BanditTask",
    "ContextualTask",
    "BernoulliBandit",
    "GaussianBandit",
    "BestArmBandit",
    "PriorBandit",
    "LinearContextualBandit",
    "parse_arm",
    "OBSERVATION_MODES",
]

OBSERVATION_MODES = ("raw", "summary")
_ARM = re.compile(r"(?:arm|button)?\s*#?\s*(\d{1,4})", re.IGNORECASE)


def parse_arm(action: str, num_arms: int) -> int | None:
    """`"3"`, `"arm 3"` or `"Arm #3"` -> 3; None when not an arm index in range."""
    match = _ARM.fullmatch(action.strip())
    if match is None:
        return None
    arm = int(match.group(1))
    return arm if arm < num_arms else None


@dataclass(frozen=True)
class BanditTask:
    """Hidden task: the mean reward of each arm."""

    means: tuple[float, ...]

    @property
    def best_arm(self) -> int:
        return int(np.argmax(self.means))


@dataclass(frozen=True)
class ContextualTask:
    """Hidden task of the linear contextual bandit: the parameter vector theta."""

    theta: tuple[float, ...]


class _Bandit(TextEnv):
    """Shared mechanics: one pull per turn, `horizon` pulls per episode, pseudo-regret at the end.

    Rewards: the realised reward of each pull.
    Information: at reset also the public rules `num_arms`, `horizon`, `reward_kind` ("bernoulli",
        "gaussian" or "linear"), plus `budget` (best-arm identification) and `dim`, `features`
        (contextual). At each pull `arm` (the arm index, -1 for a wasted turn) and `outcome` (the realised
        reward). At the episode's end `success` (the best arm was pulled in at least half the pulls),
        `oracle_return` (horizon x best mean), `regret` (pseudo-regret, sum of best mean - pulled mean;
        a wasted turn counts as the worst arm, so errors never pay) and `best_arm_fraction`.
    """

    reward_kind = "bernoulli"

    def __init__(self, num_arms: int = 5, horizon: int = 100, observation_mode: str = "raw", **kwargs):
        if num_arms < 2:
            raise ValueError(f"num_arms must be >= 2, got {num_arms}")
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode={observation_mode!r}; allowed: {OBSERVATION_MODES}")
        kwargs.setdefault("max_turns", horizon)
        super().__init__(**kwargs)
        self.num_arms = int(num_arms)
        self.horizon = int(horizon)
        self.observation_mode = observation_mode
        self._pulls: list[int] = []
        self._totals: list[float] = []

    # Families only choose how rewards are drawn and what the arms look like.
    def _draw(self, arm: int) -> float:
        raise NotImplementedError

    def _mean(self, arm: int) -> float:
        return self.task.means[arm]

    @property
    def instructions(self) -> str:
        return (
            f"You are playing a {self.num_arms}-armed bandit; the arms are numbered 0 to {self.num_arms - 1}. "
            f"{self._reward_rule()} You have {self.horizon} pulls. "
            "Each turn, answer with one arm inside \\boxed{}, for example \\boxed{0}."
        )

    def _reward_rule(self) -> str:
        return "Each pull of an arm pays 1 with a fixed, unknown probability, else 0."

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update(self._rules_info())
        return observation, info

    def _rules_info(self) -> dict:
        """Public rules for programmatic agents (all of it is also in the instructions)."""
        return {"num_arms": self.num_arms, "horizon": self.horizon, "reward_kind": self.reward_kind}

    def _start(self) -> str:
        # Plain lists and cached extremes: numpy scalar indexing would dominate a step's cost.
        self._pulls = [0] * self.num_arms
        self._totals = [0.0] * self.num_arms
        if isinstance(self.task, BanditTask):
            self._best, self._worst = float(max(self.task.means)), float(min(self.task.means))
        self._regret_sum = 0.0
        self._best_pulls = 0
        return "Pull an arm."

    def _worst_mean(self) -> float:
        return self._worst

    def _best_mean(self) -> float:
        return self._best

    def _waste(self) -> None:
        """A turn with no valid pull is charged as a pull of the worst arm, so errors never pay."""
        self._regret_sum += self._best_mean() - self._worst_mean()

    def _on_format_error(self) -> Turn:
        self._waste()
        return Turn(self._format_error_text(), done=self._last_pull(), info={"arm": -1, "outcome": 0.0})

    def _play(self, action: str) -> Turn:
        arm = parse_arm(action, self.num_arms)
        if arm is None:
            self._waste()
            text = f"'{printable(action, 40)}' is not an arm; answer a number from 0 to {self.num_arms - 1}."
            return Turn(text, invalid=True, info={"arm": -1, "outcome": 0.0}, done=self._last_pull())
        reward = self._draw(arm)
        self._pulls[arm] += 1
        self._totals[arm] += reward
        mean, best = self._mean(arm), self._best_mean()
        self._regret_sum += best - mean
        self._best_pulls += mean >= best
        text = f"arm {arm} -> {reward:.0f}" if self.reward_kind == "bernoulli" else f"arm {arm} -> {reward:.2f}"
        if self.observation_mode == "summary":
            text += "\n" + self._summary()
        done = self._last_pull()
        success = done and self._best_pulls * 2 >= self.horizon
        return Turn(text, reward=reward, done=done, success=success, info={"arm": arm, "outcome": reward})

    def _last_pull(self) -> bool:
        return self._episode_step >= self.horizon

    def _summary(self) -> str:
        parts = []
        for arm in range(self.num_arms):
            n = self._pulls[arm]
            mean = f"{self._totals[arm] / n:.2f}" if n else "-"
            parts.append(f"arm {arm}: {n} pulls, mean {mean}")
        return "stats: " + "; ".join(parts)

    def oracle_return(self) -> float:
        return self.horizon * self._best_mean()

    def describe_task(self, task: BanditTask | ContextualTask) -> str:
        """The hidden task in words (a privileged teacher's prompt reads it; the player never does)."""
        if isinstance(task, ContextualTask):
            theta = ", ".join(f"{value:.2f}" for value in task.theta)
            return f"The hidden weights are ({theta}): an arm's expected reward is its features dotted with them."
        means = ", ".join(f"arm {arm}: {mean:.2f}" for arm, mean in enumerate(task.means))
        return f"The arms' mean rewards are {means}. The best arm is arm {task.best_arm}."

    def _episode_metrics(self) -> dict:
        # Turns that never happened (the episode ended on too many errors) are wasted turns too.
        missing = max(self.horizon - self._episode_step, 0)
        regret = self._regret_sum + missing * (self._best_mean() - self._worst_mean())
        return {"regret": float(regret), "best_arm_fraction": self._best_pulls / self.horizon}

    def _render_state(self) -> str:
        return f"pull {self._episode_step}/{self.horizon}\n" + self._summary()


class BernoulliBandit(_Bandit):
    """K-armed Bernoulli bandit: one best arm at `best_mean`, the others at `other_mean` (shuffled).

    Description: the Krishnamurthy et al. (2024) instances; Easy K=4 0.75/0.25, Hard K=5 0.6/0.4.
    Action Space: text; the arm index inside `\\boxed{}`.
    Observation Space: text; `arm a -> r` after each pull (plus per-arm statistics in "summary" mode).
    Starting State: the best arm's position is drawn from `np_random` at reset.
    Rewards: 1 or 0 per pull; format errors cost `format_penalty`.
    Episode End: after `horizon` pulls, or more than `max_invalid` wasted turns.
    Information: parsed_action, format_error, invalid_action, episode_step, arm, outcome; at the end
        success, episode_return, oracle_return, regret, best_arm_fraction.
    Arguments: num_arms, best_mean, other_mean, horizon, observation_mode, and the TextEnv arguments.
    Version History: v0: initial version.
    """

    def __init__(self, num_arms: int = 5, best_mean: float = 0.6, other_mean: float = 0.4, **kwargs):
        super().__init__(num_arms=num_arms, **kwargs)
        if not 0.0 <= other_mean < best_mean <= 1.0:
            raise ValueError(f"need 0 <= other_mean < best_mean <= 1, got {other_mean}, {best_mean}")
        self.best_mean, self.other_mean = float(best_mean), float(other_mean)

    def sample_task(self, rng: np.random.Generator) -> BanditTask:
        best = int(rng.integers(self.num_arms))
        return BanditTask(tuple(self.best_mean if a == best else self.other_mean for a in range(self.num_arms)))

    def _draw(self, arm: int) -> float:
        return 1.0 if self.np_random.random() < self.task.means[arm] else 0.0


class PriorBandit(_Bandit):
    """Bernoulli bandit whose arm means are drawn i.i.d. from a family Beta(prior_alpha, prior_beta).

    Description: the prior is the structure shared across trials; a Bayes agent that knows it
    (Thompson with the true prior) is the reference. Otherwise as `BernoulliBandit`.
    Version History: v0: initial version.
    """

    def __init__(self, num_arms: int = 5, prior_alpha: float = 0.5, prior_beta: float = 0.5, **kwargs):
        super().__init__(num_arms=num_arms, **kwargs)
        if prior_alpha <= 0 or prior_beta <= 0:
            raise ValueError("prior_alpha and prior_beta must be > 0")
        self.prior_alpha, self.prior_beta = float(prior_alpha), float(prior_beta)

    def sample_task(self, rng: np.random.Generator) -> BanditTask:
        means = rng.beta(self.prior_alpha, self.prior_beta, size=self.num_arms)
        return BanditTask(tuple(round(float(m), 6) for m in means))

    def _draw(self, arm: int) -> float:
        return 1.0 if self.np_random.random() < self.task.means[arm] else 0.0


class GaussianBandit(_Bandit):
    """Gaussian bandit: means ~ N(0, mean_scale^2) at reset, rewards ~ N(mean, noise^2), shown to 2 d.p.

    Version History: v0: initial version.
    """

    reward_kind = "gaussian"

    def __init__(self, num_arms: int = 5, mean_scale: float = 1.0, noise: float = 1.0, **kwargs):
        super().__init__(num_arms=num_arms, **kwargs)
        self.mean_scale, self.noise = float(mean_scale), float(noise)

    def _reward_rule(self) -> str:
        return "Each pull of an arm pays a noisy reward around that arm's fixed, unknown mean."

    def sample_task(self, rng: np.random.Generator) -> BanditTask:
        return BanditTask(tuple(round(float(m), 6) for m in rng.normal(0.0, self.mean_scale, self.num_arms)))

    def _draw(self, arm: int) -> float:
        return round(float(self.np_random.normal(self.task.means[arm], self.noise)), 2)


class BestArmBandit(_Bandit):
    """Best-arm identification: `budget` exploratory pulls, then one commit that is scored.

    Description: TextArena's Bandit-v0 layout (best arm 0.5 + gap/2, others U(0.1, 0.5 - gap/2)) with
    the reward fixed: TextArena pays the regret of the committed arm, so its best answer scores 0.
    Rewards: 0 for exploration pulls; 1 for committing to the best arm, else 0.
    Episode End: after the commit (turn budget + 1).
    Information: as `BernoulliBandit`, plus `committed` (the committed arm, -1 if unparseable) at the end; `regret` is the simple regret.
    Version History: v0: initial version.
    """

    def __init__(self, num_arms: int = 5, gap: float = 0.1, budget: int = 20, **kwargs):
        kwargs.setdefault("max_turns", budget + 1)
        super().__init__(num_arms=num_arms, horizon=budget, **kwargs)
        self.gap, self.budget = float(gap), int(budget)

    @property
    def instructions(self) -> str:
        return (
            f"There are {self.num_arms} arms numbered 0 to {self.num_arms - 1}; each pays 1 with a fixed, unknown "
            f"probability. Explore with {self.budget} pulls, then commit to the arm you believe is best; only the "
            "commit is scored. Each turn, answer with one arm inside \\boxed{}, for example \\boxed{0}."
        )

    def sample_task(self, rng: np.random.Generator) -> BanditTask:
        best = int(rng.integers(self.num_arms))
        others = rng.uniform(0.1, 0.5 - self.gap / 2, size=self.num_arms)
        means = tuple(0.5 + self.gap / 2 if a == best else round(float(others[a]), 6) for a in range(self.num_arms))
        return BanditTask(means)

    def _draw(self, arm: int) -> float:
        return 1.0 if self.np_random.random() < self.task.means[arm] else 0.0

    def _play(self, action: str) -> Turn:
        if self._episode_step <= self.budget:
            turn = super()._play(action)
            turn.reward, turn.done, turn.success = 0.0, False, False
            if self._episode_step == self.budget:
                turn.observation += "\nExploration is over: commit to the best arm inside \\boxed{}."
            return turn
        arm = parse_arm(action, self.num_arms)
        if arm is None:
            text = f"'{printable(action, 40)}' is not an arm; the commit is lost."
            self._committed = None
            return Turn(text, done=True, invalid=True, info={"committed": -1})
        self._committed = arm
        success = arm == self.task.best_arm
        text = f"You committed to arm {arm}. " + ("It is the best arm." if success else "It is not the best arm.")
        return Turn(text, reward=float(success), done=True, success=success, info={"committed": arm})

    def _start(self) -> str:
        self._committed = None
        return super()._start()

    def _last_pull(self) -> bool:
        return self._episode_step > self.budget

    def _rules_info(self) -> dict:
        return {**super()._rules_info(), "budget": self.budget}

    def oracle_return(self) -> float:
        return 1.0

    def _episode_metrics(self) -> dict:
        chosen = self._worst_mean() if self._committed is None else self._mean(self._committed)
        return {"regret": self._best_mean() - chosen, "best_arm_fraction": self._best_pulls / self.budget}


class LinearContextualBandit(_Bandit):
    """Linear contextual bandit: each turn shows a feature vector per arm; reward = x . theta + noise.

    Description: theta is a unit vector in R^dim drawn at reset and kept across episodes; features are
    drawn each turn from N(0, I/dim) and printed to 2 d.p. (the printed values are the true ones).
    Rewards: x_a . theta + N(0, noise^2), shown to 2 d.p.
    Information: as `BernoulliBandit`, plus `features` (the next turn's per-arm vectors, also at reset);
    `oracle_return` is the sum of the best expected reward of each turn; `regret` the pseudo-regret.
    Version History: v0: initial version.
    """

    reward_kind = "linear"

    def __init__(self, num_arms: int = 4, dim: int = 3, noise: float = 0.1, **kwargs):
        super().__init__(num_arms=num_arms, **kwargs)
        self.dim, self.noise = int(dim), float(noise)

    def _reward_rule(self) -> str:
        return (
            f"Each turn shows a {self.dim}-number feature vector per arm; an arm's expected reward is a fixed, "
            "unknown linear function of its features."
        )

    def sample_task(self, rng: np.random.Generator) -> ContextualTask:
        theta = rng.normal(size=self.dim)
        return ContextualTask(tuple(round(float(v), 6) for v in theta / np.linalg.norm(theta)))

    def _new_features(self) -> None:
        raw = self.np_random.normal(0.0, 1.0 / np.sqrt(self.dim), size=(self.num_arms, self.dim))
        self._features = np.round(raw, 2)
        self._expected = self._features @ np.asarray(self.task.theta)

    def _features_text(self) -> str:
        rows = [f"arm {a}: " + " ".join(f"{v:.2f}" for v in self._features[a]) for a in range(self.num_arms)]
        return "features: " + " | ".join(rows)

    def _features_info(self) -> tuple:
        return tuple(tuple(float(v) for v in row) for row in self._features)

    def _start(self) -> str:
        super()._start()
        self._oracle_sum = 0.0
        self._new_features()
        return self._features_text()

    def _mean(self, arm: int) -> float:
        return float(self._expected[arm])

    def _best_mean(self) -> float:
        return float(self._expected.max())

    def _worst_mean(self) -> float:
        return float(self._expected.min())

    def _draw(self, arm: int) -> float:
        return round(float(self._expected[arm] + self.np_random.normal(0.0, self.noise)), 2)

    def _next_context(self, turn: Turn) -> Turn:
        self._oracle_sum += self._best_mean()
        if not turn.done:
            self._new_features()
            turn.observation += "\n" + self._features_text()
            turn.info["features"] = self._features_info()
        return turn

    def _play(self, action: str) -> Turn:
        return self._next_context(super()._play(action))

    def _on_format_error(self) -> Turn:
        return self._next_context(super()._on_format_error())

    def _rules_info(self) -> dict:
        return {**super()._rules_info(), "dim": self.dim, "features": self._features_info()}

    def oracle_return(self) -> float:
        # Turns never played (too many errors) are valued at the last context's best arm.
        return float(self._oracle_sum + max(self.horizon - self._episode_step, 0) * self._best_mean())
