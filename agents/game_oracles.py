"""Baselines for Minesweeper, RockPaperScissors and Blackjack: solvers that remember the hidden task.

- Minesweeper: constraint propagation over every number seen, with the mines that ended earlier
  episodes remembered; when nothing is provably safe, the cell with the lowest estimated mine risk.
- RockPaperScissors: a frequency counter of the opponent's moves, countering the most frequent one.
- Blackjack: remembers which pile index held which card and the dealer's total once revealed, and
  plans draws by a short expectimax over known and unknown cards.
With `memory=False` each forgets at every episode boundary. The `random` agents play uniformly random
legal moves.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

from agents.game_agent import GameAgent
from envs.blackjack import FULL_DECK, hand_value
from envs.minesweeper import HIDDEN, neighbours
from envs.rock_paper_scissors import BEATS, MOVES

__all__ = [
    "MinesweeperSolver",
    "RandomCellAgent",
    "FrequencyCounterAgent",
    "RandomMoveAgent",
    "BlackjackPlanner",
    "RandomBlackjackAgent",
    "MINESWEEPER_BASELINES",
    "ROCK_PAPER_SCISSORS_BASELINES",
    "BLACKJACK_BASELINES",
]

_BOARD_ROW = re.compile(r"^\s*\d+ ((?:[?.*0-8] )*[?.*0-8])$", re.MULTILINE)


def _current_board(observation: str, rows: int) -> tuple[str, ...] | None:
    """The last board printed in `observation` (the newest one when an episode ends and the next opens)."""
    found = [match.replace(" ", "") for match in _BOARD_ROW.findall(observation)]
    return tuple(found[-rows:]) if len(found) >= rows else None


class MinesweeperSolver(GameAgent):
    """Open a provably safe cell (cells with no adjacent mine first); else the lowest-risk hidden cell."""

    rule_keys = ("rows", "cols", "num_mines")

    def forget(self) -> None:
        self.numbers: dict[tuple[int, int], int] = {}
        self.mines: set[tuple[int, int]] = set()

    def _read(self, board) -> None:
        for r, row in enumerate(board):
            for c, glyph in enumerate(row):
                if glyph.isdigit() or glyph == ".":
                    self.numbers[(r, c)] = 0 if glyph == "." else int(glyph)

    def observe(self, info: dict) -> None:
        if info.get("hit_mine"):
            self.mines.add(tuple(info["cell"]))
        if info.get("board") is not None:
            self.board = info["board"]
            self._read(self.board)

    def start_episode(self, observation: str, info: dict) -> None:
        self.board = _current_board(observation, self.rules["rows"]) or info["board"]
        self._read(self.board)

    def _deduce(self) -> set[tuple[int, int]]:
        """Cells proven safe by the numbers seen; adds proven mines to `self.mines`."""
        rows, cols = self.rules["rows"], self.rules["cols"]
        safe = set(self.numbers)
        changed = True
        while changed:
            changed = False
            for cell, count in self.numbers.items():
                around = neighbours(cell, rows, cols)
                unknown = [n for n in around if n not in safe and n not in self.mines]
                if not unknown:
                    continue
                mines_left = count - sum(n in self.mines for n in around)
                if mines_left == 0:
                    safe.update(unknown)
                    changed = True
                elif mines_left == len(unknown):
                    self.mines.update(unknown)
                    changed = True
        if len(self.mines) >= self.rules["num_mines"]:
            safe = {(r, c) for r in range(rows) for c in range(cols)} - self.mines
        return safe

    def _risk(self, cell, hidden_unknown: int) -> float:
        rows, cols = self.rules["rows"], self.rules["cols"]
        density = (self.rules["num_mines"] - len(self.mines)) / max(hidden_unknown, 1)
        risks = [density]
        for n in neighbours(cell, rows, cols):
            if n in self.numbers:
                around = neighbours(n, rows, cols)
                unknown = [m for m in around if m not in self.numbers and m not in self.mines]
                risks.append((self.numbers[n] - sum(m in self.mines for m in around)) / max(len(unknown), 1))
        return max(risks)

    def choose(self, observation: str, info: dict) -> str:
        hidden = [(r, c) for r, row in enumerate(self.board) for c, glyph in enumerate(row) if glyph == HIDDEN]
        safe = self._deduce()
        options = [cell for cell in hidden if cell in safe]
        if options:
            zeros = [cell for cell in options if self.numbers.get(cell) == 0]
            cell = self._pick(zeros or options)
        else:
            # Every hidden cell a proven mine means a planted board already clear at its start: any will do.
            unknown = [cell for cell in hidden if cell not in self.mines] or hidden or [(0, 0)]
            risks = [self._risk(cell, len(unknown)) for cell in unknown]
            lowest = min(risks)
            cell = self._pick([c for c, risk in zip(unknown, risks, strict=True) if risk <= lowest + 1e-9])
        return f"{cell[0]} {cell[1]}"


class RandomCellAgent(GameAgent):
    """A uniformly random hidden cell."""

    rule_keys = ("rows",)

    def observe(self, info: dict) -> None:
        if info.get("board") is not None:
            self.board = info["board"]

    def start_episode(self, observation: str, info: dict) -> None:
        self.board = _current_board(observation, self.rules["rows"]) or info["board"]

    def choose(self, observation: str, info: dict) -> str:
        cell = self._pick([(r, c) for r, row in enumerate(self.board) for c, g in enumerate(row) if g == HIDDEN])
        return f"{cell[0]} {cell[1]}"


class FrequencyCounterAgent(GameAgent):
    """Counter the opponent's most frequent move so far (random among ties, and before any move is seen)."""

    def forget(self) -> None:
        self.counts = Counter()

    def observe(self, info: dict) -> None:
        if info.get("opponent_move") is not None:
            self.counts[info["opponent_move"]] += 1

    def choose(self, observation: str, info: dict) -> str:
        most = max(self.counts[m] for m in MOVES)
        return BEATS[self._pick([m for m in MOVES if self.counts[m] == most])]


class RandomMoveAgent(GameAgent):
    """A uniformly random move."""

    def choose(self, observation: str, info: dict) -> str:
        return self._pick(list(MOVES))


class BlackjackPlanner(GameAgent):
    """Remember the cards behind pile indices and the dealer's total; pick draws by expectimax.

    The value of a hand is P(dealer total < hand total <= 21): the dealer's total once it was revealed,
    else a distribution over the dealer's hidden card given the shown one and the rule "at least 17".
    A draw is either a remembered card or the lowest unknown index, whose card is distributed as the
    cards not seen yet. The search looks at most `depth` draws ahead.
    """

    rule_keys = ("pile_size", "max_turns")

    def __init__(self, depth: int = 2, **kwargs):
        self.depth = int(depth)
        super().__init__(**kwargs)

    def forget(self) -> None:
        self.known: dict[int, int] = {}
        self.dealer_total: int | None = None

    def observe(self, info: dict) -> None:
        self.turns = int(info.get("episode_step", 0))
        if info.get("action") == "hit":
            self.known[info["index"]] = info["card"]
            self.hand.append(info["card"])
            self.drawn.add(info["index"])
        if info.get("dealer_total") is not None:
            self.dealer_total = int(info["dealer_total"])

    def start_episode(self, observation: str, info: dict) -> None:
        self.hand = list(info["player_hand"])
        self.upcard = int(info["dealer_upcard"])
        self.drawn: set[int] = set()
        self.turns = 0

    def _unseen(self) -> Counter:
        seen = Counter(self.hand) + Counter(v for i, v in self.known.items() if i not in self.drawn)
        seen[self.upcard] += 1
        return Counter(FULL_DECK) - seen

    def _dealer_totals(self, unseen: Counter) -> dict[int, float]:
        if self.dealer_total is not None:
            return {self.dealer_total: 1.0}
        weights = Counter()
        for card, count in unseen.items():
            total = hand_value((self.upcard, card))
            if total >= 17:
                weights[total] += count
        size = sum(weights.values())
        return {total: weight / size for total, weight in weights.items()}

    def choose(self, observation: str, info: dict) -> str:
        unseen = self._unseen()
        dealer = self._dealer_totals(unseen)
        unknown_size = sum(unseen.values())
        draw_odds = tuple((card, count / unknown_size) for card, count in sorted(unseen.items()))

        @functools.lru_cache(maxsize=None)
        def value(hand: tuple[int, ...], known: tuple[int, ...], draws: int) -> float:
            total = hand_value(hand)
            if total > 21:
                return 0.0
            best = sum(p for dealer_total, p in dealer.items() if dealer_total < total)
            if draws == 0:
                return best
            for card in set(known):
                rest = list(known)
                rest.remove(card)
                best = max(best, value(tuple(sorted(hand + (card,))), tuple(rest), draws - 1))
            explore = sum(p * value(tuple(sorted(hand + (card,))), known, draws - 1) for card, p in draw_odds)
            return max(best, explore)

        known = {i: v for i, v in self.known.items() if i not in self.drawn}
        hand = tuple(sorted(self.hand))
        known_values = tuple(sorted(known.values()))
        draws = min(self.rules["max_turns"] - self.turns - 1, self.depth)
        stand = value(hand, (), 0)
        best_move, best_value = "stand", stand
        if draws > 0:
            for card in sorted(set(known_values)):
                rest = list(known_values)
                rest.remove(card)
                option = value(tuple(sorted(hand + (card,))), tuple(rest), draws - 1)
                if option > best_value + 1e-12:
                    index = min(i for i, v in known.items() if v == card)
                    best_move, best_value = f"hit {index}", option
            free = [i for i in range(self.rules["pile_size"]) if i not in self.known and i not in self.drawn]
            if free and unknown_size:
                explore = sum(p * value(tuple(sorted(hand + (card,))), known_values, draws - 1) for card, p in draw_odds)
                if explore > best_value + 1e-12:
                    best_move = f"hit {free[0]}"
        return best_move


class RandomBlackjackAgent(GameAgent):
    """Stand with probability 1/2, else draw a uniformly random index not drawn this episode."""

    rule_keys = ("pile_size",)

    def observe(self, info: dict) -> None:
        if info.get("action") == "hit":
            self.drawn.add(info["index"])

    def start_episode(self, observation: str, info: dict) -> None:
        self.drawn: set[int] = set()

    def choose(self, observation: str, info: dict) -> str:
        if self.rng.random() < 0.5:
            return "stand"
        return f"hit {self._pick([i for i in range(self.rules['pile_size']) if i not in self.drawn])}"


MINESWEEPER_BASELINES = {"oracle": MinesweeperSolver, "random": RandomCellAgent}
ROCK_PAPER_SCISSORS_BASELINES = {"oracle": FrequencyCounterAgent, "random": RandomMoveAgent}
BLACKJACK_BASELINES = {"oracle": BlackjackPlanner, "random": RandomBlackjackAgent}
