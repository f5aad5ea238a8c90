"""Blackjack (ORBIT's variant): hand values, the deck generator, the exact checker, turn caps and memory."""

import gymnasium as gym
import numpy as np

from agents import play_baseline as play
from envs.blackjack import FULL_DECK, Deck, check_actions, hand_value, sample_deck, solve, winning_draw

MEDIUM = "icl/Blackjack-Medium-v0"


def _deck(dealer, player, pile_head):
    """A full deck whose first cards are the given ones, the rest in sorted order."""
    rest = list(FULL_DECK)
    for card in (*dealer, *player, *pile_head):
        rest.remove(card)
    return Deck(tuple(dealer) + tuple(player) + tuple(pile_head) + tuple(rest))


# Dealer 10 + 7 = 17; player 10 + 2 = 12; pile index 0 holds a 10 (a bust), index 1 a 9; the rest in order.
TASK = _deck((10, 7), (10, 2), (10, 9))


def test_hand_values_count_one_ace_as_eleven_when_it_fits():
    assert hand_value((1, 10)) == 21 and hand_value((1, 1, 9)) == 21 and hand_value((10, 10, 1)) == 21
    assert hand_value((10, 5, 9)) == 24 and hand_value((1, 6)) == 17 and len(FULL_DECK) == 52


def test_checker_accepts_the_oracle_solution_and_rejects_a_one_move_corruption():
    solution = solve(TASK, max_turns=4)
    assert len(solution) == 2 and solution[1] == "stand"  # one draw of a 6 to 9 wins: 18 to 21 beats 17
    assert 6 <= TASK.pile[int(solution[0].split()[1])] <= 9
    assert check_actions(TASK, solution, max_turns=4)
    assert not check_actions(TASK, ["hit 0", "stand"], max_turns=4)  # 22: bust
    assert not check_actions(TASK, ["stand"], max_turns=4)  # 12 < 17
    env = gym.make(MEDIUM, episodes=1).unwrapped
    env.reset(seed=0, options={"task": TASK})
    *_, info = env.step("\\boxed{hit 1}")
    assert info["card"] == 9 and info["player_total"] == 21
    _, reward, terminated, _, info = env.step("\\boxed{stand}")
    assert terminated and info["success"] and reward == 1.0 and info["dealer_total"] == 17


def test_turn_cap_is_enforced_and_cards_cannot_be_drawn_twice():
    env = gym.make(MEDIUM, episodes=1, max_turns=2).unwrapped  # ORBIT's adapter ignored max_turns
    task = _deck((10, 8), (2, 3), (2, 2, 2))
    env.reset(seed=0, options={"task": task})
    *_, info = env.step("\\boxed{hit 0}")
    observation, reward, terminated, _, info = env.step("\\boxed{hit 0}")
    assert info["invalid_action"] and terminated and not info["success"] and info["dealer_total"] == 18


def test_generated_decks_follow_the_rules():
    rng = np.random.default_rng(0)
    for _ in range(100):
        task = sample_deck(rng, max_hits=3)
        assert sorted(task.cards) == sorted(FULL_DECK) and hand_value(task.dealer) >= 17
        assert winning_draw(task, 3) is not None and check_actions(task, solve(task, 4), 4)


def test_card_memory_improves_across_episodes_only_with_memory():
    trials = 150
    memory = np.array([r["episode_successes"] for r in play(MEDIUM, "oracle", trials)], dtype=float)
    memoryless = np.array([r["episode_successes"] for r in play(MEDIUM, "oracle", trials, agent_kwargs={"memory": False})])
    # Measured (200 trials): with memory 0.38 / 0.61 / 0.77; without flat at 0.38.
    assert memory[:, 2].mean() - memoryless[:, 2].mean() >= 0.2
    assert (memoryless[:, 0] == memoryless[:, 2]).all()  # same deck, same draws, no memory: same outcome
