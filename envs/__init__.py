"""icl-arena environments: multi-episode text tasks with a hidden task, registered in gymnasium as `icl/...`.

Importing this package registers every environment. Make a plain episode with
`gymnasium.make("icl/BernoulliBandit-Hard-v0")` and a multi-episode trial (same hidden task in every
episode) with `gymnasium.make("icl/BernoulliBandit-Hard-v0", episodes=5, horizon=20)`; ids whose
catalog shows more than one default episode are trials already. Only gymnasium and numpy are imported.
"""

from envs.core import MAX_ACTION_CHARS, TextEnv, Turn, parse_action, printable
from envs.multi_episode import MultiEpisode
from envs.registration import CatalogEntry, catalog, make_text_env, register

__all__ = [
    "TextEnv",
    "Turn",
    "MultiEpisode",
    "parse_action",
    "printable",
    "register",
    "make_text_env",
    "catalog",
    "CatalogEntry",
    "MAX_ACTION_CHARS",
]

# The registration table, grouped by family: (id, "module:Class", kwargs, hidden task, oracle).
# A row's kwargs may hold `episodes` (and other MultiEpisode keys) to register a multi-episode trial.
_BANDIT = "hidden: arm means"
_REGISTRY = {
    "bandits": [
        ("icl/BernoulliBandit-Easy-v0", "envs.bandits:BernoulliBandit",
         dict(num_arms=4, best_mean=0.75, other_mean=0.25, horizon=100), _BANDIT, "best arm"),
        ("icl/BernoulliBandit-Hard-v0", "envs.bandits:BernoulliBandit",
         dict(num_arms=5, best_mean=0.6, other_mean=0.4, horizon=100), _BANDIT, "best arm"),
        ("icl/BernoulliBandit-Meta-v0", "envs.bandits:BernoulliBandit",
         dict(num_arms=5, best_mean=0.75, other_mean=0.25, horizon=20, episodes=3), _BANDIT, "best arm"),
        ("icl/GaussianBandit-Easy-v0", "envs.bandits:GaussianBandit",
         dict(num_arms=5, mean_scale=1.0, horizon=100), _BANDIT, "best arm"),
        ("icl/GaussianBandit-Hard-v0", "envs.bandits:GaussianBandit",
         dict(num_arms=10, mean_scale=0.5, horizon=100), _BANDIT, "best arm"),
        ("icl/GaussianBandit-Meta-v0", "envs.bandits:GaussianBandit",
         dict(num_arms=5, mean_scale=1.0, horizon=20, episodes=3), _BANDIT, "best arm"),
        ("icl/BestArmBandit-Easy-v0", "envs.bandits:BestArmBandit",
         dict(num_arms=5, gap=0.1, budget=20), _BANDIT, "commit to the best arm"),
        ("icl/BestArmBandit-Hard-v0", "envs.bandits:BestArmBandit",
         dict(num_arms=10, gap=0.05, budget=40), _BANDIT, "commit to the best arm"),
        ("icl/PriorBandit-Easy-v0", "envs.bandits:PriorBandit",
         dict(num_arms=5, prior_alpha=0.5, prior_beta=0.5, horizon=50), "hidden: arm means ~ Beta(0.5, 0.5)",
         "best arm"),
        ("icl/PriorBandit-Hard-v0", "envs.bandits:PriorBandit",
         dict(num_arms=10, prior_alpha=2.0, prior_beta=2.0, horizon=100), "hidden: arm means ~ Beta(2, 2)",
         "best arm"),
        ("icl/ContextualBandit-Easy-v0", "envs.bandits:LinearContextualBandit",
         dict(num_arms=4, dim=3, horizon=50), "hidden: theta", "argmax x.theta"),
        ("icl/ContextualBandit-Hard-v0", "envs.bandits:LinearContextualBandit",
         dict(num_arms=8, dim=6, horizon=100), "hidden: theta", "argmax x.theta"),
        ("icl/ContextualBandit-Meta-v0", "envs.bandits:LinearContextualBandit",
         dict(num_arms=4, dim=3, horizon=20, episodes=3), "hidden: theta", "argmax x.theta"),
    ],
}


def _register_all() -> None:
    for family, rows in _REGISTRY.items():
        for env_id, entry_point, kwargs, hidden, oracle in rows:
            register(env_id, entry_point, kwargs, family=family, hidden=hidden, oracle=oracle)


_register_all()
