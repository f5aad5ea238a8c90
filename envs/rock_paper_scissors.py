"""RockPaperScissors against a biased opponent whose move distribution is the hidden task."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = ["Opponent", "RockPaperScissors", "MOVES", "BEATS", "sample_opponent", "outcome", "check_rounds",
           "solve", "best_response_success", "parse_move"]

MOVES = ("rock", "paper", "scissors")
#: BEATS[m] is the move that beats m.
BEATS = {"rock": "paper", "paper": "scissors", "scissors": "rock"}
_ALIASES = {"r": "rock", "p": "paper", "s": "scissors", "stone": "rock", "scissor": "scissors"}


@dataclass(frozen=True)
class Opponent:
    """Hidden task: the opponent's probability of playing rock, paper and scissors (in `MOVES` order)."""

    probabilities: tuple[float, float, float]

    @property
    def dominant(self) -> str:
        """The opponent's most likely move."""
        return MOVES[int(np.argmax(self.probabilities))]


def sample_opponent(rng: np.random.Generator, min_dom: float) -> Opponent:
    """ORBIT's opponent: one dominant move with p = min_dom + (1 - min_dom) * Beta(2, 2); the rest split by
    Dirichlet(1, 1). Every draw comes from `rng` (ORBIT drew the opponent's moves unseeded)."""
    dominant = int(rng.integers(3))
    p_dominant = min_dom + (1.0 - min_dom) * float(rng.beta(2.0, 2.0))
    split = rng.dirichlet([1.0, 1.0]) * (1.0 - p_dominant)
    others = [m for m in range(3) if m != dominant]
    probabilities = [0.0, 0.0, 0.0]
    probabilities[dominant] = p_dominant
    probabilities[others[0]], probabilities[others[1]] = float(split[0]), float(split[1])
    return Opponent(tuple(round(p, 6) for p in probabilities))


def outcome(move: str, opponent_move: str) -> str:
    """"win", "lose" or "draw" for the player."""
    if move == opponent_move:
        return "draw"
    return "win" if BEATS[opponent_move] == move else "lose"


def check_rounds(moves: Sequence[str], opponent_moves: Sequence[str], wins_needed: int) -> bool:
    """Exact checker: True when the player's moves beat the opponent's at least `wins_needed` times."""
    return sum(outcome(m, o) == "win" for m, o in zip(moves, opponent_moves, strict=True)) >= wins_needed


def solve(task: Opponent, rounds: int) -> list[str]:
    """The actions of a player who knows the task: counter the dominant move every round."""
    return [BEATS[task.dominant]] * rounds


def best_response_success(task: Opponent, rounds: int, wins_needed: int) -> float:
    """P(at least `wins_needed` wins in `rounds`) when always countering the dominant move.

    No policy does better: every round is won with probability at most max(p), independently of the
    past, so the count of wins is at best Binomial(rounds, max(p)).
    """
    p = max(task.probabilities)
    return float(sum(math.comb(rounds, k) * p**k * (1 - p) ** (rounds - k) for k in range(wins_needed, rounds + 1)))


def parse_move(action: str) -> str | None:
    """`"rock"`, `"Paper"`, `"s"` -> the move; None otherwise."""
    word = action.strip().lower().rstrip(".!")
    word = _ALIASES.get(word, word)
    return word if word in MOVES else None


class RockPaperScissors(TextEnv):
    """Play `max_turns` rounds of rock-paper-scissors against an opponent with a hidden, fixed bias.

    Description: ORBIT's training task (arXiv 2602.04089): the opponent plays a dominant move with
    probability min_dom + (1 - min_dom) * Beta(2, 2) and splits the rest by Dirichlet(1, 1); the
    distribution persists across the episodes of a trial, and the opponent's moves are drawn from
    `np_random`. Tiers: Easy min_dom 0.6, Medium (ORBIT) min_dom 0.4, both needing 3 wins of 5;
    Hard min_dom 0.4 needing 4 wins of 5; 3 episodes.
    Action Space: text; a move inside `\\boxed{}`: `\\boxed{rock}`, `\\boxed{paper}` or `\\boxed{scissors}`.
    Observation Space: text; `Round 2: you played paper, the opponent played rock. You win (1 win so far).`
    Starting State: the opponent's distribution is drawn with `np_random` at reset.
    Rewards: 1.0 at the episode's end when at least `wins_needed` rounds were won, else 0; format
        errors cost `format_penalty`.
    Episode End: after `max_turns` turns (format errors and invalid moves use up a round), or more than
        `max_invalid` invalid turns.
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `move`,
        `opponent_move`, `outcome` (all None when invalid) and `wins`; at the end `success`,
        `episode_return`, `oracle_return` (the success probability of always countering the dominant
        move, the best any policy can do). Reset: `instructions`, `task`, `episode_step`, `max_turns`,
        `wins_needed`.
    Arguments: min_dom, wins_needed, and the TextEnv arguments (max_turns, the rounds, defaults to 5).
    Version History: v0: initial version.
    """

    default_max_turns = 5

    def __init__(self, min_dom: float = 0.4, wins_needed: int = 3, **kwargs):
        super().__init__(**kwargs)
        if not 1.0 / 3.0 <= min_dom <= 1.0:
            raise ValueError(f"min_dom must be in [1/3, 1], got {min_dom}")
        if not 1 <= wins_needed <= self.max_turns:
            raise ValueError(f"wins_needed must be in [1, max_turns={self.max_turns}], got {wins_needed}")
        self.min_dom, self.wins_needed = float(min_dom), int(wins_needed)

    def sample_task(self, rng: np.random.Generator) -> Opponent:
        return sample_opponent(rng, self.min_dom)

    @property
    def instructions(self) -> str:
        return (
            f"You are playing rock-paper-scissors: {self.max_turns} rounds per episode against the same opponent, "
            "who has fixed habits (some moves are more likely than others) that do not change between episodes. "
            f"Rock beats scissors, scissors beats paper, paper beats rock. Win at least {self.wins_needed} of the "
            f"{self.max_turns} rounds to win the episode. Answer with your move inside \\boxed{{}}, for example "
            "\\boxed{rock}."
        )

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"max_turns": self.max_turns, "wins_needed": self.wins_needed})
        return observation, info

    def _start(self) -> str:
        self._wins = 0
        return "Round 1: make your move."

    def _round_over(self, turn: Turn) -> Turn:
        """Score the episode at its last round; only then is the reward paid (as in ORBIT)."""
        if self._episode_step >= self.max_turns:
            turn.done = True
            turn.success = self._wins >= self.wins_needed
            turn.reward += float(turn.success)
            verdict = "You win the episode." if turn.success else "You lose the episode."
            turn.observation += f"\nThe episode is over: {self._wins} win(s) of {self.max_turns}. {verdict}"
        turn.info["wins"] = self._wins
        return turn

    def _play(self, action: str) -> Turn:
        move = parse_move(action)
        if move is None:
            text = f"'{printable(action, 40)}' is not rock, paper or scissors; the round is lost."
            return self._round_over(Turn(text, invalid=True, info={"move": None, "opponent_move": None, "outcome": None}))
        opponent_move = MOVES[int(self.np_random.choice(3, p=np.asarray(self.task.probabilities) / sum(self.task.probabilities)))]
        result = outcome(move, opponent_move)
        self._wins += result == "win"
        text = (f"Round {self._episode_step}: you played {move}, the opponent played {opponent_move}. "
                f"You {result} ({self._wins} win(s) so far).")
        return self._round_over(Turn(text, info={"move": move, "opponent_move": opponent_move, "outcome": result}))

    def _on_format_error(self) -> Turn:
        return self._round_over(Turn(self._format_error_text(), info={"move": None, "opponent_move": None, "outcome": None}))

    def _turn_limit_text(self) -> str:
        return "The episode is over."

    def oracle_return(self) -> float:
        return best_response_success(self.task, self.max_turns, self.wins_needed)
