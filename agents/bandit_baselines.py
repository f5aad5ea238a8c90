"""Classic bandit algorithms as text agents: uniform, greedy, epsilon-greedy, UCB, Thompson, LinUCB, oracle.

Each reads the structured keys the bandit envs put in `info` (`arm`, `outcome`, `features`, rules at
reset) and answers `\\boxed{arm}`. With `memory=True` the statistics carry across the episodes of a
trial; with `memory=False` they restart at every `new_episode`.

`action_distribution(observation, info)` is `act` without the draw: it folds `info` in the same way
and returns the distribution over answers that `act` samples from in that state (the oracle teacher
of `trainers.oracle_teacher` distils it). Thompson's probabilities are computed by numerical
integration, not Monte Carlo (`thompson_probabilities`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "thompson_probabilities",
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


# Grid points of the numerical integration in `thompson_probabilities`: with 4096 midpoints the
# probabilities of Beta posteriors after up to 100 pulls agree with 10^6-sample Monte Carlo to 1e-3.
_GRID_POINTS = 4096


def _log_beta_pdf(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    normaliser = math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
    return normaliser + (alpha - 1.0) * np.log(x) + (beta - 1.0) * np.log1p(-x)


@functools.lru_cache(maxsize=65536)
def _argmax_probabilities(kind: str, parameters: tuple[tuple[float, float], ...]) -> tuple[float, ...]:
    """P(arm a's posterior draw is the largest) for independent posteriors, by midpoint integration.

    P(a) = integral of pdf_a(x) * prod_{b != a} cdf_b(x) dx, with each cdf the running sum of its pdf
    on the same grid. `kind` "beta": (alpha, beta) per arm on (0, 1); "normal": (mean, std) per arm on
    mean +- 9 std of the widest span.
    """
    if kind == "beta":
        edges = np.linspace(0.0, 1.0, _GRID_POINTS + 1)
        x = 0.5 * (edges[1:] + edges[:-1])
        log_pdf = np.stack([_log_beta_pdf(x, a, b) for a, b in parameters])  # (K, G)
    else:
        means = np.array([mean for mean, _ in parameters])
        stds = np.array([std for _, std in parameters])
        edges = np.linspace((means - 9 * stds).min(), (means + 9 * stds).max(), _GRID_POINTS + 1)
        x = 0.5 * (edges[1:] + edges[:-1])
        log_pdf = -0.5 * ((x[None, :] - means[:, None]) / stds[:, None]) ** 2 - np.log(stds[:, None] * math.sqrt(2 * math.pi))
    width = edges[1] - edges[0]
    mass = np.exp(log_pdf) * width  # (K, G) probability of each bin
    mass /= mass.sum(axis=1, keepdims=True)
    cdf = np.cumsum(mass, axis=1) - 0.5 * mass  # (K, G) P(draw < bin midpoint)
    log_cdf = np.log(np.clip(cdf, 1e-300, None))
    others = log_cdf.sum(axis=0, keepdims=True) - log_cdf  # (K, G) log prod over the other arms
    probabilities = (mass * np.exp(others)).sum(axis=1)
    return tuple(float(p) for p in probabilities / probabilities.sum())


def thompson_probabilities(kind: str, parameters) -> np.ndarray:
    """The probability that Thompson sampling pulls each arm: P(its posterior draw is the largest).

    Computed by numerical integration on a 4096-point grid (deterministic, no random draws) and
    normalised to sum to 1; cached per set of posteriors (the order of the arms does not matter).

    Args:
        kind: "beta" (parameters are (alpha, beta) per arm) or "normal" ((mean, std) per arm).
        parameters: One pair per arm.

    Returns:
        (K,) probabilities.

    Example:
        >>> thompson_probabilities("beta", [(2.0, 1.0), (1.0, 2.0)]).round(3).tolist()
        [0.833, 0.167]
    """
    pairs = [(float(a), float(b)) for a, b in parameters]
    order = sorted(range(len(pairs)), key=lambda index: pairs[index])
    sorted_probabilities = _argmax_probabilities(kind, tuple(pairs[index] for index in order))
    probabilities = np.empty(len(pairs))
    probabilities[order] = sorted_probabilities
    return probabilities


def _uniform_over_best(values: np.ndarray) -> np.ndarray:
    """The distribution of `BanditAgent._argmax`: uniform over the maximal entries."""
    best = values >= values.max()
    return best / best.sum()


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

    def _commits(self, info: dict) -> bool:
        """Whether the next answer is the best-arm commit (the exploration budget is spent)."""
        pulls_this_episode = 0 if info.get("new_episode") else info.get("episode_step", 0)
        return "budget" in self.rules and pulls_this_episode >= self.rules["budget"]

    def act(self, observation: str, info: dict) -> str:
        """Answer the next arm as `\\boxed{k}`."""
        self.observe(info)
        if not self.num_arms:
            return "\\boxed{0}"
        if self._commits(info):
            return f"\\boxed{{{self.commit()}}}"
        return f"\\boxed{{{self.choose(info)}}}"

    def action_distribution(self, observation: str, info: dict) -> dict[str, float]:
        """The distribution `act` would draw its answer from, after folding `info` in as `act` does.

        Call it instead of `act` (never both for one observation: each folds the step in).

        Returns:
            Answer text (`\\boxed{k}`) -> probability, over the answers with probability > 0.
        """
        self.observe(info)
        if not self.num_arms:
            return {"\\boxed{0}": 1.0}
        probabilities = self.commit_distribution() if self._commits(info) else self.choice_distribution(info)
        return {f"\\boxed{{{arm}}}": float(p) for arm, p in enumerate(probabilities) if p > 0}

    # Policies override these two, and their distributions.
    def choose(self, info: dict) -> int:
        raise NotImplementedError

    def choice_distribution(self, info: dict) -> np.ndarray:
        """(K,) probabilities of `choose(info)` in the current state."""
        raise NotImplementedError(f"{type(self).__name__} has no action distribution")

    def commit(self) -> int:
        """Best-arm identification: the arm with the highest posterior mean (Beta(1,1) prior)."""
        return self._argmax((self.sums + 1) / (self.counts + 2))

    def commit_distribution(self) -> np.ndarray:
        """(K,) probabilities of `commit()`."""
        return _uniform_over_best((self.sums + 1) / (self.counts + 2))

    def _unpulled_distribution(self) -> np.ndarray | None:
        unpulled = self.counts == 0
        return unpulled / unpulled.sum() if unpulled.any() else None

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

    def choice_distribution(self, info: dict) -> np.ndarray:
        return np.full(self.num_arms, 1.0 / self.num_arms)


class GreedyAgent(BanditAgent):
    """Pull each arm once, then the best empirical mean (random tie-breaks)."""

    def choose(self, info: dict) -> int:
        arm = self._unpulled()
        return arm if arm is not None else self._argmax(self.sums / self.counts)

    def choice_distribution(self, info: dict) -> np.ndarray:
        unpulled = self._unpulled_distribution()
        return unpulled if unpulled is not None else _uniform_over_best(self.sums / self.counts)


class EpsilonGreedyAgent(GreedyAgent):
    """Greedy, but a uniformly random arm with probability `epsilon`."""

    def __init__(self, epsilon: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def choose(self, info: dict) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.num_arms))
        return super().choose(info)

    def choice_distribution(self, info: dict) -> np.ndarray:
        return self.epsilon / self.num_arms + (1.0 - self.epsilon) * super().choice_distribution(info)


class UCBAgent(BanditAgent):
    """UCB: after one pull of each arm, argmax mean + sqrt(alpha * ln t / n) (BanditBench alpha=0.5)."""

    def __init__(self, alpha: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def choose(self, info: dict) -> int:
        arm = self._unpulled()
        if arm is not None:
            return arm
        return self._argmax(self._upper_bounds())

    def _upper_bounds(self) -> np.ndarray:
        total = self.counts.sum()
        return self.sums / self.counts + np.sqrt(self.alpha * np.log(total) / self.counts)

    def choice_distribution(self, info: dict) -> np.ndarray:
        unpulled = self._unpulled_distribution()
        return unpulled if unpulled is not None else _uniform_over_best(self._upper_bounds())


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

    def choice_distribution(self, info: dict) -> np.ndarray:
        """P(each arm's posterior draw is the largest), by numerical integration (`thompson_probabilities`)."""
        if self.rules.get("reward_kind", "bernoulli") != "bernoulli":
            mean = self.sums / (self.counts + 1)
            return thompson_probabilities("normal", zip(mean, 1.0 / np.sqrt(self.counts + 1), strict=True))
        return thompson_probabilities("beta", zip(self.prior_alpha + self.sums,
                                                  self.prior_beta + self.counts - self.sums, strict=True))

    def _posterior_means(self) -> np.ndarray:
        return (self.sums + self.prior_alpha) / (self.counts + self.prior_alpha + self.prior_beta)

    def commit(self) -> int:
        return self._argmax(self._posterior_means())

    def commit_distribution(self) -> np.ndarray:
        return _uniform_over_best(self._posterior_means())


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

    def _scores(self) -> np.ndarray:
        inverse = np.linalg.inv(self.design)
        theta = inverse @ self.target
        x = self._features
        bonus = np.sqrt(np.einsum("ad,de,ae->a", x, inverse, x))
        return x @ theta + self.alpha * bonus

    def choose(self, info: dict) -> int:
        return self._argmax(self._scores())

    def choice_distribution(self, info: dict) -> np.ndarray:
        return _uniform_over_best(self._scores())


class BanditOracle(BanditAgent):
    """Knows the hidden task (read from the reset info): always pulls, or commits to, the best arm."""

    def observe(self, info: dict) -> None:
        super().observe(info)
        if info.get("task") is not None:
            self.task = info["task"]
        if "features" in info:
            self._features = np.asarray(info["features"], dtype=float)

    def _values(self) -> np.ndarray:
        if hasattr(self.task, "theta"):
            return self._features @ np.asarray(self.task.theta)
        return np.asarray(self.task.means)

    def choose(self, info: dict) -> int:
        return self._argmax(self._values())

    def choice_distribution(self, info: dict) -> np.ndarray:
        return _uniform_over_best(self._values())

    def commit(self) -> int:
        return self._argmax(np.asarray(self.task.means))

    def commit_distribution(self) -> np.ndarray:
        return _uniform_over_best(np.asarray(self.task.means))


BANDIT_BASELINES = {
    "uniform": UniformAgent,
    "greedy": GreedyAgent,
    "epsilon_greedy": EpsilonGreedyAgent,
    "ucb": UCBAgent,
    "thompson": ThompsonAgent,
    "linucb": LinUCBAgent,
    "oracle": BanditOracle,
}
