"""GEM interop: a GEM game as a multi-episode inner env (runs only where `gem-llm` is installed)."""

import re

import pytest

from envs.interop.gem import GemGame, gem_installed
from envs.multi_episode import MultiEpisode

_HINT = re.compile(r"target number is (higher|lower)")
needs_gem = pytest.mark.skipif(not gem_installed(), reason="GEM is optional: pip install gem-llm to run these")


@pytest.mark.skipif(gem_installed(), reason="checks the message shown where GEM is missing")
def test_missing_gem_names_the_package_to_install():
    with pytest.raises(ImportError, match="pip install gem-llm"):
        GemGame()


def _binary_search_episode(env, low=1, high=50):
    while True:
        guess = (low + high) // 2
        observation, reward, terminated, _, info = env.step(f"\\boxed{{{guess}}}")
        if info.get("episode_end") or terminated:
            return guess, info
        low, high = (guess + 1, high) if _HINT.search(observation).group(1) == "higher" else (low, guess - 1)


@needs_gem
def test_the_games_secret_persists_across_the_episodes_of_a_trial():
    env = MultiEpisode(GemGame("game:GuessTheNumber-v0-hard", oracle_return=1.0), episodes=3)
    observation, info = env.reset(seed=5)
    assert "Guess The Number" in observation and info["task"].game_id == "game:GuessTheNumber-v0-hard"
    secret, info = _binary_search_episode(env)
    assert info["success"]  # binary search needs at most 6 of GEM's 7 turns on 1..50
    for _ in range(2):
        _, reward, terminated, _, info = env.step(f"\\boxed{{{secret}}}")
        assert reward == 1.0 and info["success"]
    assert terminated and info["episode_successes"] == [True, True, True]


@needs_gem
def test_gem_partial_credit_at_the_turn_limit_is_not_a_success():
    env = GemGame("game:GuessTheNumber-v0-easy")  # 1..10 in 4 turns
    assert env.thread_safe is False
    _, info = env.reset(seed=1)
    secret = env._game.game_number
    for guess in [n for n in range(1, 11) if n != secret][:4]:
        _, reward, terminated, _, info = env.step(f"\\boxed{{{guess}}}")
    assert terminated and not info["success"] and 0.0 < reward < 1.0
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step("\\boxed{abc}")  # GEM ends the episode on an unparsable answer
    assert terminated and not info["success"] and reward == pytest.approx(-0.1)
