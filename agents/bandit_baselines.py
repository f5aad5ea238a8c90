"""Classic bandit algorithms as text agents: uniform, greedy, epsilon-greedy, UCB, Thompson, LinUCB, oracle.

Each reads the structured keys the bandit envs put in `info` (`arm`, `outcome`, `features`, rules at
reset) and answers `\\boxed{arm}`. With `memory=True` the statistics carry across the episodes of a
trial; with `memory=False` they restart at every `new_episode`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BanditAgent",
    "UniformAgent",
    "GreedyAgent",
    "EpsilonGreedyAgent",
    "UCBAgent",
    "ThompsonAgent",
    "LinUCBAgent",
    "BanditOracle",
    "BANDIT_BASELINES",
]


class BanditAgent:
    """Common bookkeeping: per-arm counts and sums, episode boundaries, the best-arm commit.

    Args:
        memory: keep statistics across the episodes of a trial.
        seed: seed of the agent's own generator (re-seeded by `reset(seed=...)`).
    """

    def __init__(self, memory: bool = True, seed: int | None = 0):
        self.memory = bool(memory)
        self.rng = np.random.default_rng(seed)
        self.num_arms = 0
        self.counts = np.zeros(0)
        self.sums = np.zeros(0)

    def reset(self, seed: int | None = None) -> None:
        """Start a new trial; `seed` re-seeds the agent's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.num_arms = 0

    def _clear(self) -> None:
        self.counts = np.zeros(self.num_arms)
        self.sums = np.zeros(self.num_arms)

    def observe(self, info: dict) -> None:
        """Fold the last step's outcome into the statistics; handle episode boundaries."""
        if "num_arms" in info and self.num_arms != info["num_arms"]:
            self.num_arms = int(info["num_arms"])
            self._clear()
        self.rules = {k: info[k] for k in ("horizon", "budget", "reward_kind") if k in info} or getattr(self, "rules", {})
        if info.get("arm", -1) >= 0 and self.num_arms:
            self.counts[info["arm"]] += 1
            self.sums[info["arm"]] += float(info["outcome"])
        if info.get("new_episode") and not self.memory:
            self._clear()

    def act(self, observation: str, info: dict) -> str:
        """Answer the next arm as `\\boxed{k}`."""
        self.observe(info)
        if not self.num_arms:
            return "\\boxed{0}"
        pulls_this_episode = 0 if info.get("new_episode") else info.get("episode_step", 0)
        if "budget" in self.rules and pulls_this_episode >= self.rules["budget"]:
            return f"\\boxed{{{self.commit()}}}"
        return f"\\boxed{{{self.choose(info)}}}"

    # Policies override these two.
    def choose(self, info: dict) -> int:
        raise NotImplementedError

    def commit(self) -> int:
        """Best-arm identification: the arm with the highest posterior mean (Beta(1,1) prior)."""
        return self._argmax((self.sums + 1) / (self.counts + 2))

    def _argmax(self, values: np.ndarray) -> int:
        best = np.flatnonzero(values >= values.max())
        return int(self.rng.choice(best))

    def _unpulled(self) -> int | None:
        unpulled = np.flatnonzero(self.counts == 0)
        return int(self.rng.choice(unpulled)) if len(unpulled) else None


class UniformAgent(BanditAgent):
    """Pull an arm uniformly at random."""

    def choose(self, info: dict) -> int:
        return int(self.rng.integers(self.num_arms))


class GreedyAgent(BanditAgent):
    """Pull each arm once, then the best empirical mean (random tie-breaks)."""

    def choose(self, info: dict) -> int:
        arm = self._unpulled()
        return arm if arm is not None else self._argmax(self.sums / self.counts)


class EpsilonGreedyAgent(GreedyAgent):
    """Greedy, but a uniformly random arm with probability `epsilon`."""

    def __init__(self, epsilon: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def choose(self, info: dict) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.num_arms))
        return super().choose(info)


class UCBAgent(BanditAgent):
    """UCB: after one pull of each arm, argmax mean + sqrt(alpha * ln t / n) (BanditBench alpha=0.5)."""

    def __init__(self, alpha: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def choose(self, info: dict) -> int:
        arm = self._unpulled()
        if arm is not None:
            return arm
        total = self.counts.sum()
        return self._argmax(self.sums / self.counts + np.sqrt(self.alpha * np.log(total) / self.counts))


class ThompsonAgent(BanditAgent):
    """Thompson sampling: Beta(prior_alpha, prior_beta) for 0/1 rewards, a N(mean, 1/(n+1)) posterior else.

    On the contextual bandit the Gaussian posterior ignores the features (use `linucb` there).
    """

    def __init__(self, prior_alpha: float = 1.0, prior_beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.prior_alpha, self.prior_beta = float(prior_alpha), float(prior_beta)

    def choose(self, info: dict) -> int:
        if self.rules.get("reward_kind", "bernoulli") != "bernoulli":
            mean = self.sums / (self.counts + 1)
            return self._argmax(self.rng.normal(mean, 1.0 / np.sqrt(self.counts + 1)))
        samples = self.rng.beta(self.prior_alpha + self.sums, self.prior_beta + self.counts - self.sums)
        return self._argmax(samples)

    def commit(self) -> int:
        return self._argmax((self.sums + self.prior_alpha) / (self.counts + self.prior_alpha + self.prior_beta))


class LinUCBAgent(BanditAgent):
    """LinUCB (Li et al. 2010) with ridge regression on the shown features; alpha scales the bonus."""

    def __init__(self, alpha: float = 0.5, ridge: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.ridge = float(alpha), float(ridge)
        self.design: np.ndarray | None = None
        self._features: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.design, self._features = None, None

    def observe(self, info: dict) -> None:
        if self.design is None and "dim" in info:
            self._reset_regression(int(info["dim"]))
        if info.get("arm", -1) >= 0 and self._features is not None:
            x = self._features[info["arm"]]
            self.design += np.outer(x, x)
            self.target += float(info["outcome"]) * x
        if info.get("new_episode") and not self.memory and self.design is not None:
            self._reset_regression(self.design.shape[0])
        if "features" in info:
            self._features = np.asarray(info["features"], dtype=float)
        super().observe(info)

    def _reset_regression(self, dim: int) -> None:
        self.design = self.ridge * np.eye(dim)
        self.target = np.zeros(dim)

    def choose(self, info: dict) -> int:
        inverse = np.linalg.inv(self.design)
        theta = inverse @ self.target
        x = self._features
        bonus = np.sqrt(np.einsum("ad,de,ae->a", x, inverse, x))
        return self._argmax(x @ theta + self.alpha * bonus)


class BanditOracle(BanditAgent):
    """Knows the hidden task (read from the reset info): always pulls, or commits to, the best arm."""

    def observe(self, info: dict) -> None:
        super().observe(info)
        if info.get("task") is not None:
            self.task = info["task"]
        if "features" in info:
            self._features = np.asarray(info["features"], dtype=float)

    def choose(self, info: dict) -> int:
        if hasattr(self.task, "theta"):
            return self._argmax(self._features @ np.asarray(self.task.theta))
        return self._argmax(np.asarray(self.task.means))

    def commit(self) -> int:
        return self._argmax(np.asarray(self.task.means))


BANDIT_BASELINES = {
    "uniform": UniformAgent,
    "greedy": GreedyAgent,
    "epsilon_greedy": EpsilonGreedyAgent,
    "ucb": UCBAgent,
    "thompson": ThompsonAgent,
    "linucb": LinUCBAgent,
    "oracle": BanditOracle,
}
