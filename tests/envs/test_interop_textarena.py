"""TextArena interop: a TextArena game as a multi-episode inner env, and icl trials as TextArena games."""

import re

import gymnasium as gym
import pytest

ta = pytest.importorskip("textarena", reason="TextArena interop needs the textarena extra")

from envs.interop.textarena import TextArenaGame, register_icl_envs, textarena_id  # noqa: E402

GAME = "icl/TextArena-GuessTheNumber-v0"
_HINT = re.compile(r"The target number is (higher|lower)")


def _binary_search_episode(env, observation, low=1, high=20):
    """Play one episode of TextArena's GuessTheNumber by reading its hints; return the last guess."""
    while True:
        guess = (low + high) // 2
        observation, reward, terminated, _, info = env.step(f"\\boxed{{{guess}}}")
        if info.get("episode_end") or terminated:
            return guess, reward, info
        direction = _HINT.search(observation).group(1)
        low, high = (guess + 1, high) if direction == "higher" else (low, guess - 1)


def test_the_games_secret_persists_across_the_episodes_of_a_trial():
    env = gym.make(GAME)
    observation, info = env.reset(seed=11)
    assert info["task"].game_id == "GuessTheNumber-v0" and "Guess The Number" in observation
    secret, reward, info = _binary_search_episode(env, observation)
    assert reward == 1.0 and info["success"]  # binary search finds 1..20 within TextArena's 10 turns
    for episode in (2, 3):
        observation, reward, terminated, _, info = env.step(f"\\boxed{{{secret}}}")  # first guess, remembered
        assert reward == 1.0 and info["success"] and info["episode_index"] == episode - 1
    assert terminated and info["episode_successes"] == [True, True, True]


def test_rewards_invalid_moves_and_the_turn_limit_map_onto_the_protocol():
    env = gym.make(GAME, episodes=1).unwrapped
    assert env.thread_safe and isinstance(env, TextArenaGame)  # test_registered runs it in 64 threads
    _, info = env.reset(seed=4)
    _, _, terminated, _, info = env.step("\\boxed{twelve}")
    assert info["invalid_action"] and not terminated  # TextArena lets the player retry once
    secret = env._game.state.game_state["game_number"]
    # TextArena 0.7.4 checks its 10-turn limit before counting the turn, so the 11th guess ends the game.
    for guess in [n for n in range(1, 21) if n != secret][:11]:
        observation, reward, terminated, _, info = env.step(f"[{guess}]")
    # TextArena pays partial credit at its turn limit; that is not a success.
    assert terminated and not info["success"] and 0.0 <= reward < 1.0 and "turn limit" in info["reason"]
    env.reset(seed=4)
    env.step("\\boxed{x}")
    _, reward, terminated, _, info = env.step("\\boxed{y}")  # a second invalid move in a row ends the game
    assert terminated and info["invalid_action"] and not info["success"]


@pytest.mark.parametrize(
    "env_id, actions",
    [("icl/BernoulliBandit-Meta-v0", ["[0]", "1", "\\boxed{2}", "[junk]"]),
     ("icl/GuessTheNumber-Hard-v0", ["25", "[12]", "\\boxed{38}", "6", "[44]", "\\boxed{31}"])],
)
def test_an_icl_trial_is_one_textarena_game_under_its_default_wrappers(env_id, actions):
    assert textarena_id(env_id) in register_icl_envs()
    game = ta.make(textarena_id(env_id))  # LLMObservationWrapper + ActionFormattingWrapper
    game.reset(num_players=1, seed=5)
    direct = gym.make(env_id, action_format="either")
    observation, _ = direct.reset(seed=5)
    done, step, total, transcript = False, 0, 0.0, ""
    while not done:
        player, transcript = game.get_observation()
        action = actions[step % len(actions)]
        done, _ = game.step(action)
        # TextArena's ActionFormattingWrapper puts bare actions in brackets; the icl env parses either.
        bracketed = action if ("[" in action or "]" in action) else f"[{action}]"
        observation, reward, terminated, truncated, info = direct.step(bracketed)
        total += reward
        step += 1
        assert done == (terminated or truncated)
    rewards, game_info = game.close()
    assert player == 0 and rewards[0] == pytest.approx(total)
    assert game_info[0]["episode_successes"] == info["episode_successes"]
    # One trial, one game: the wrapper's history holds every episode.
    assert "[Episode 1/3]" in transcript and "[Episode 3/3]" in transcript and "[Player]" in transcript


def test_textarena_games_leave_the_callers_global_random_alone():
    # TextArena reseeds Python's global generator at every reset; the wrapper swaps in the game's own copy.
    import random

    random.seed(123)
    expected = [random.random() for _ in range(3)]
    random.seed(123)
    env = gym.make(GAME)
    env.reset(seed=5)
    for guess in (10, 5, 15):
        env.step(f"\\boxed{{{guess}}}")
    assert [random.random() for _ in range(3)] == expected
