"""Blackjack, ORBIT's variant: the player picks which deck index to draw; the deck order is the hidden task."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from envs.core import TextEnv, Turn, printable

__all__ = ["Deck", "Blackjack", "FULL_DECK", "sample_deck", "hand_value", "card_name", "check_actions", "solve",
           "winning_draw", "parse_move"]

#: Card values of a 52-card deck: aces count 1 (or 11, see `hand_value`), faces 10.
FULL_DECK = tuple(sorted([value for value in range(1, 10) for _ in range(4)] + [10] * 16))
_HIT = re.compile(r"(?:hit|h|draw|take)?\s*#?\s*(\d{1,3})")
_STAND = {"stand", "s", "stay", "stick", "hold"}


@dataclass(frozen=True)
class Deck:
    """Hidden task: the deck order. Cards 0-1 are the dealer's, 2-3 the player's, the rest the drawable pile."""

    cards: tuple[int, ...]

    @property
    def dealer(self) -> tuple[int, ...]:
        """The dealer's two cards."""
        return self.cards[:2]

    @property
    def player(self) -> tuple[int, ...]:
        """The player's two starting cards."""
        return self.cards[2:4]

    @property
    def pile(self) -> tuple[int, ...]:
        """The drawable cards, indexed from 0."""
        return self.cards[4:]


def hand_value(cards: Sequence[int]) -> int:
    """Blackjack total: one ace counts 11 when that does not bust the hand."""
    total = sum(cards)
    return total + 10 if 1 in cards and total + 10 <= 21 else total


def card_name(value: int) -> str:
    """How a card value is shown: "A" for an ace (1), else the number."""
    return "A" if value == 1 else str(value)


def winning_draw(task: Deck, max_hits: int) -> list[int] | None:
    """Fewest pile indices whose cards bring the player's total above the dealer's and to at most 21, or None.

    Searches multisets of card values (at most 220 for 3 hits), not index subsets, then maps values to
    the lowest free indices.
    """
    dealer = hand_value(task.dealer)
    available = Counter(task.pile)
    for hits in range(max_hits + 1):
        for values in itertools.combinations_with_replacement(sorted(available), hits):
            if not dealer < hand_value(task.player + values) <= 21:
                continue
            if all(available[v] >= n for v, n in Counter(values).items()):
                indices, used = [], set()
                for value in values:
                    index = next(i for i, card in enumerate(task.pile) if card == value and i not in used)
                    used.add(index)
                    indices.append(index)
                return indices
    return None


def sample_deck(rng: np.random.Generator, max_hits: int) -> Deck:
    """Shuffle until the dealer's two cards total at least 17 (ORBIT's rule, without its 50-try cap) and a
    win is reachable within `max_hits` draws."""
    while True:
        cards = rng.permutation(FULL_DECK).tolist()
        if hand_value(cards[:2]) < 17:
            continue
        task = Deck(tuple(cards))
        if winning_draw(task, max_hits) is not None:
            return task


def check_actions(task: Deck, actions: Sequence[str], max_turns: int) -> bool:
    """Exact checker: the actions ("hit <index>" or "stand") stand within `max_turns` turns, never drawing a
    card twice or busting, with a total above the dealer's."""
    hand, drawn = list(task.player), set()
    for action in list(actions)[:max_turns]:
        move = parse_move(action, len(task.pile))
        if move is None or move in drawn:
            return False
        if move == "stand":
            return hand_value(task.dealer) < hand_value(hand) <= 21
        drawn.add(move)
        hand.append(task.pile[move])
        if hand_value(hand) > 21:
            return False
    return False


def solve(task: Deck, max_turns: int) -> list[str]:
    """The actions of a player who knows the deck: draw the fewest winning cards, then stand."""
    indices = winning_draw(task, max_turns - 1)
    if indices is None:
        raise ValueError("this deck cannot be won within max_turns; sample_deck never draws such a deck")
    return [f"hit {index}" for index in indices] + ["stand"]


def parse_move(action: str, pile_size: int) -> int | str | None:
    """`"stand"` -> "stand"; `"hit 5"`, `"hit5"` or `"5"` -> 5 when 0 <= 5 < pile_size; None otherwise."""
    text = action.strip().lower().rstrip(".!")
    if text in _STAND:
        return "stand"
    match = _HIT.fullmatch(text)
    if match is None:
        return None
    index = int(match.group(1))
    return index if index < pile_size else None


class Blackjack(TextEnv):
    """Simplified Blackjack where the player chooses which face-down card of the deck to draw.

    Description: ORBIT's training variant (arXiv 2602.04089): the deck order is the hidden task and
    the same every episode, so an agent that remembers which index held which card can draw exactly
    what it needs. The dealer holds two cards totalling at least 17 (one shown) and never draws; the
    player starts with two cards. Unlike ORBIT's adapter, `max_turns` is enforced. Decks are drawn so
    that a win needs at most `max_turns - 1` draws. Tiers: Easy 6 turns, Medium (ORBIT) 4 turns,
    Hard 3 turns; 3 episodes.
    Action Space: text; `\\boxed{hit 12}` (draw the card at pile index 12) or `\\boxed{stand}`.
    Observation Space: text; the drawn card and the hand's total after a hit; both hands at the end.
    Starting State: the deck is shuffled with `np_random` at reset.
    Rewards: 1.0 for standing with a total of at most 21 above the dealer's, else 0; format errors cost
        `format_penalty`.
    Episode End: a stand, a bust, `max_turns` turns, or more than `max_invalid` invalid turns (an index
        off the pile or drawn already this episode).
    Information: every step `parsed_action`, `format_error`, `invalid_action`, `episode_step`, `action`
        ("hit", "stand" or None), `index` and `card` (the drawn pile index and value, else None) and
        `player_total`; at the end `dealer_hand`, `dealer_total`, `success`, `episode_return`,
        `oracle_return` (1.0). Reset: `instructions`, `task`, `episode_step`, `pile_size`,
        `dealer_upcard`, `player_hand`, `player_total`, `max_turns`.
    Arguments: the TextEnv arguments (max_turns defaults to 4).
    Version History: v0: initial version.
    """

    default_max_turns = 4

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.max_turns < 2:
            raise ValueError(f"max_turns must be >= 2 (one draw and a stand), got {self.max_turns}")
        self.pile_size = len(FULL_DECK) - 4

    def sample_task(self, rng: np.random.Generator) -> Deck:
        return sample_deck(rng, self.max_turns - 1)

    @property
    def instructions(self) -> str:
        return (
            "You are playing a simplified Blackjack against a dealer. Aces count 1 or 11, faces 10; a total over 21 "
            "busts. The dealer holds two cards worth at least 17 in total (one is shown) and never draws. You start "
            f"with two cards. The remaining {self.pile_size} cards lie face down at indices 0 to {self.pile_size - 1}; "
            "each turn either draw the card at an index of your choice or stand. You win by standing with a total "
            f"above the dealer's and at most 21, within {self.max_turns} turns. The deck is in the same order in "
            "every episode. Answer inside \\boxed{}: \\boxed{hit 12} or \\boxed{stand}."
        )

    def _hand_text(self) -> str:
        return f"Your hand: {', '.join(card_name(c) for c in self._hand)} (total {hand_value(self._hand)})."

    def reset(self, *, seed=None, options=None):
        observation, info = super().reset(seed=seed, options=options)
        info.update({"pile_size": self.pile_size, "dealer_upcard": self.task.dealer[0],
                     "player_hand": tuple(self.task.player), "player_total": hand_value(self.task.player),
                     "max_turns": self.max_turns})
        return observation, info

    def _start(self) -> str:
        self._hand = list(self.task.player)
        self._drawn: dict[int, int] = {}
        return f"The dealer shows {card_name(self.task.dealer[0])} and one face-down card. {self._hand_text()}"

    def _dealer_text(self) -> str:
        return f"The dealer's hand: {', '.join(card_name(c) for c in self.task.dealer)} (total {hand_value(self.task.dealer)})."

    def _play(self, action: str) -> Turn:
        move = parse_move(action, self.pile_size)
        total = hand_value(self._hand)
        if move is None or move in self._drawn:
            reason = "was drawn already" if move is not None else f"is not 'stand' or 'hit <index 0-{self.pile_size - 1}>'"
            text = f"'{printable(action, 40)}' {reason}. {self._hand_text()}"
            return Turn(text, invalid=True, info={"action": None, "index": None, "card": None, "player_total": total})
        if move == "stand":
            success = hand_value(self.task.dealer) < total <= 21
            verdict = "You win!" if success else "You lose."
            info = {"action": "stand", "index": None, "card": None, "player_total": total}
            return Turn(f"You stand at {total}. {self._dealer_text()} {verdict}", reward=float(success), done=True,
                        success=success, info=info)
        card = self.task.pile[move]
        self._drawn[move] = card
        self._hand.append(card)
        total = hand_value(self._hand)
        drawn = ", ".join(f"{i}={card_name(c)}" for i, c in sorted(self._drawn.items()))
        text = f"Index {move} holds {card_name(card)}. {self._hand_text()} Drawn this episode: {drawn}."
        info = {"action": "hit", "index": move, "card": card, "player_total": total}
        if total > 21:
            return Turn(f"{text} Bust! {self._dealer_text()} You lose.", done=True, info=info)
        return Turn(text, info=info)

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text(), info={"action": None, "index": None, "card": None,
                                                     "player_total": hand_value(self._hand)})

    def _turn_limit_text(self) -> str:
        return f"You ran out of turns without standing. {self._dealer_text()} You lose."

    def _episode_metrics(self) -> dict:
        # The dealer is revealed at every episode end (ORBIT shows both hands), whichever way it ended.
        return {"dealer_hand": tuple(self.task.dealer), "dealer_total": hand_value(self.task.dealer)}

    def oracle_return(self) -> float:
        return 1.0
