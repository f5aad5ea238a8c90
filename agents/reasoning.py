"""Baselines that write a short reasoning segment before each action: a transcript format with thinking tokens.

TIP ranks a student's tokens by entropy and divergence; a bandit turn of the default format is one arm
token, so there is nothing to rank. These agents precede each answer with what their own state says,
so imitating them gives a policy whose reasoning tokens are bookkeeping (confidently right or wrong in
an under-trained student) and whose action token is a draw (uncertain):

- `thompson_reasoning` (bandits): `n 3 1 2 0 4; best 4. \\boxed{2}`: the pulls of each arm so far in
  the trial, the arm with the highest posterior mean (ties: the lowest index), then Thompson's draw.
- `oracle_reasoning` (Mastermind): `12 codes left. \\boxed{1 2}`: how many codes are still consistent
  with every answer, then a uniformly drawn one of them.

The env reads only the `\\boxed{}` part. `action_distribution` prefixes the same reasoning to every answer
(the reasoning is a function of the state), so an oracle teacher teaches the reasoning ids with certainty.
They are built by `agents.baseline(name, env_id)` but are not in `agents.BASELINES`, so leaderboards and
the tiny tokenizer's corpus are unchanged.
"""

from __future__ import annotations

import numpy as np

from agents.bandit_baselines import ThompsonAgent
from agents.guessing_oracles import ConsistentCodeAgent

__all__ = ["ReasoningThompson", "ReasoningCodeAgent", "REASONING_BASELINES"]


class ReasoningThompson(ThompsonAgent):
    """Thompson sampling that first states each arm's pulls and the arm with the highest posterior mean."""

    def reasoning(self) -> str:
        """`n <pulls per arm>; best <arm>.` from the current statistics."""
        means = (self.sums + self.prior_alpha) / (self.counts + self.prior_alpha + self.prior_beta)
        pulls = " ".join(str(int(count)) for count in self.counts)
        return f"n {pulls}; best {int(np.argmax(means))}."

    def act(self, observation: str, info: dict) -> str:
        answer = super().act(observation, info)
        return f"{self.reasoning()} {answer}" if self.num_arms else answer

    def action_distribution(self, observation: str, info: dict) -> dict[str, float]:
        distribution = super().action_distribution(observation, info)
        if not self.num_arms:
            return distribution
        prefix = self.reasoning()
        return {f"{prefix} {answer}": probability for answer, probability in distribution.items()}


class ReasoningCodeAgent(ConsistentCodeAgent):
    """The consistent-code Mastermind oracle that first states how many codes are still consistent."""

    def act(self, observation: str, info: dict) -> str:
        self._take_in(observation, info)
        return f"{len(self.candidates)} codes left. \\boxed{{{self.choose(observation, info)}}}"

    def action_distribution(self, observation: str, info: dict) -> dict[str, float]:
        self._take_in(observation, info)
        prefix = f"{len(self.candidates)} codes left."
        return {f"{prefix} \\boxed{{{move}}}": p for move, p in self.choice_distribution(observation, info).items()}


#: Reasoning baselines by name, with the family each plays.
REASONING_BASELINES = {"thompson_reasoning": ("bandits", ReasoningThompson),
                       "oracle_reasoning": ("mastermind", ReasoningCodeAgent)}
