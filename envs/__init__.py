"""icl-arena environments: multi-episode text tasks with a hidden task, registered in gymnasium as `icl/...`.

Importing this package registers every environment. Make a plain episode with
`gymnasium.make("icl/BernoulliBandit-Hard-v0")` and a multi-episode trial (same hidden task in every
episode) with `gymnasium.make("icl/BernoulliBandit-Hard-v0", episodes=5, horizon=20)`; ids whose
catalog shows more than one default episode are trials already. Only gymnasium and numpy are imported.
"""

import importlib.util

from envs.core import MAX_ACTION_CHARS, TextEnv, Turn, parse_action, printable
from envs.interop.gem import gem_installed
from envs.multi_episode import MultiEpisode
from envs.registration import (
    CatalogEntry,
    catalog,
    catalog_entry,
    default_episodes,
    import_modules,
    load_plugins,
    make_text_env,
    register,
    registered_class,
    resolve_env_id,
    split_env_id,
)

__all__ = [
    "TextEnv",
    "Turn",
    "MultiEpisode",
    "parse_action",
    "printable",
    "register",
    "make_text_env",
    "catalog",
    "catalog_entry",
    "CatalogEntry",
    "registered_class",
    "default_episodes",
    "load_plugins",
    "import_modules",
    "resolve_env_id",
    "split_env_id",
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
    # Word, number and card games: every tier is a 3-episode trial of one hidden task.
    "guess_the_number": [
        ("icl/GuessTheNumber-Easy-v0", "envs.guess_the_number:GuessTheNumber",
         dict(low=1, high=10, max_turns=3, episodes=3), "hidden: secret number", "binary search with memory"),
        ("icl/GuessTheNumber-Medium-v0", "envs.guess_the_number:GuessTheNumber",
         dict(low=1, high=30, max_turns=4, episodes=3), "hidden: secret number", "binary search with memory"),
        ("icl/GuessTheNumber-Hard-v0", "envs.guess_the_number:GuessTheNumber",
         dict(low=1, high=50, max_turns=3, episodes=3), "hidden: secret number", "binary search with memory"),
    ],
    "mastermind": [
        ("icl/Mastermind-Easy-v0", "envs.mastermind:Mastermind",
         dict(code_length=2, num_digits=6, max_turns=3, episodes=3), "hidden: code", "random consistent guess"),
        ("icl/Mastermind-Medium-v0", "envs.mastermind:Mastermind",  # ORBIT's held-out Mastermind
         dict(code_length=3, num_digits=6, max_turns=3, episodes=3), "hidden: code", "random consistent guess"),
        ("icl/Mastermind-Hard-v0", "envs.mastermind:Mastermind",
         dict(code_length=4, num_digits=6, max_turns=3, episodes=3), "hidden: code", "random consistent guess"),
    ],
    "wordle": [
        ("icl/Wordle-Easy-v0", "envs.wordle:Wordle", dict(word_length=3, max_turns=10, episodes=3),
         "hidden: word", "consistent-candidate solver"),
        ("icl/Wordle-Medium-v0", "envs.wordle:Wordle", dict(word_length=4, max_turns=10, episodes=3),
         "hidden: word", "consistent-candidate solver"),
        ("icl/Wordle-Hard-v0", "envs.wordle:Wordle", dict(word_length=5, max_turns=10, episodes=3),  # ORBIT's
         "hidden: word", "consistent-candidate solver"),
    ],
    "hangman": [
        ("icl/Hangman-Easy-v0", "envs.hangman:Hangman", dict(word_length=3, max_turns=10, episodes=3),  # ORBIT's
         "hidden: word", "consistent-candidate solver"),
        ("icl/Hangman-Medium-v0", "envs.hangman:Hangman", dict(word_length=5, max_turns=5, episodes=3),
         "hidden: word", "consistent-candidate solver"),
        ("icl/Hangman-Hard-v0", "envs.hangman:Hangman", dict(word_length=4, max_turns=5, episodes=3),
         "hidden: word", "consistent-candidate solver"),
    ],
    "minesweeper": [
        ("icl/Minesweeper-Easy-v0", "envs.minesweeper:Minesweeper",  # ORBIT's reveal-only 5x5
         dict(rows=5, cols=5, num_mines=5, max_turns=8, episodes=3), "hidden: mine layout",
         "constraint propagation with memory"),
        ("icl/Minesweeper-Medium-v0", "envs.minesweeper:Minesweeper",
         dict(rows=6, cols=6, num_mines=8, max_turns=10, episodes=3), "hidden: mine layout",
         "constraint propagation with memory"),
        ("icl/Minesweeper-Hard-v0", "envs.minesweeper:Minesweeper",
         dict(rows=8, cols=8, num_mines=12, max_turns=14, episodes=3), "hidden: mine layout",
         "constraint propagation with memory"),
    ],
    "rock_paper_scissors": [
        ("icl/RockPaperScissors-Easy-v0", "envs.rock_paper_scissors:RockPaperScissors",
         dict(min_dom=0.6, wins_needed=3, max_turns=5, episodes=3), "hidden: opponent bias",
         "frequency counter with memory"),
        ("icl/RockPaperScissors-Medium-v0", "envs.rock_paper_scissors:RockPaperScissors",  # ORBIT's
         dict(min_dom=0.4, wins_needed=3, max_turns=5, episodes=3), "hidden: opponent bias",
         "frequency counter with memory"),
        ("icl/RockPaperScissors-Hard-v0", "envs.rock_paper_scissors:RockPaperScissors",
         dict(min_dom=0.4, wins_needed=4, max_turns=5, episodes=3), "hidden: opponent bias",
         "frequency counter with memory"),
    ],
    "blackjack": [
        ("icl/Blackjack-Easy-v0", "envs.blackjack:Blackjack", dict(max_turns=6, episodes=3),
         "hidden: deck order", "card memory + expectimax"),
        ("icl/Blackjack-Medium-v0", "envs.blackjack:Blackjack", dict(max_turns=4, episodes=3),  # ORBIT's
         "hidden: deck order", "card memory + expectimax"),
        ("icl/Blackjack-Hard-v0", "envs.blackjack:Blackjack", dict(max_turns=3, episodes=3),
         "hidden: deck order", "card memory + expectimax"),
    ],
    # Grid and puzzle families: every tier is a 3-episode trial of one hidden task.
    "partial_maze": [
        ("icl/PartialMaze-Easy-v0", "envs.partial_maze:PartialMaze",
         dict(shapes=((5, 5), (6, 5), (5, 6), (6, 6)), min_path=4, max_path=5, max_turns=9, episodes=3),
         "hidden: maze layout (4-neighbour view)", "explorer with map memory; BFS once known"),
        ("icl/PartialMaze-Medium-v0", "envs.partial_maze:PartialMaze",  # ORBIT's held-out maze
         dict(shapes=((6, 6), (7, 6), (7, 7), (6, 7)), min_path=7, max_path=8, max_turns=9, episodes=3),
         "hidden: maze layout (4-neighbour view)", "explorer with map memory; BFS once known"),
        ("icl/PartialMaze-Hard-v0", "envs.partial_maze:PartialMaze",
         dict(shapes=((8, 8), (9, 8), (9, 9), (8, 9)), min_path=11, max_path=13, max_turns=15, episodes=3),
         "hidden: maze layout (4-neighbour view)", "explorer with map memory; BFS once known"),
    ],
    "hidden_frozen_lake": [
        ("icl/HiddenFrozenLake-Easy-v0", "envs.hidden_frozen_lake:HiddenFrozenLake",
         dict(rows=4, columns=4, num_holes=3, max_turns=10, episodes=3),
         "hidden: hole layout", "safest path that fits, with hole memory"),
        ("icl/HiddenFrozenLake-Medium-v0", "envs.hidden_frozen_lake:HiddenFrozenLake",
         dict(rows=5, columns=5, num_holes=6, max_turns=12, episodes=3),
         "hidden: hole layout", "safest path that fits, with hole memory"),
        ("icl/HiddenFrozenLake-Hard-v0", "envs.hidden_frozen_lake:HiddenFrozenLake",
         dict(rows=6, columns=6, num_holes=9, slip_range=(0.0, 0.2), max_turns=16, episodes=3),
         "hidden: hole layout, slip probability", "safest path that fits, with hole memory"),
    ],
    "relabeled_grid": [
        ("icl/RelabeledGrid-Easy-v0", "envs.relabeled_grid:RelabeledGrid",
         dict(rows=5, columns=5, wall_fraction=0.0, min_path=4, max_path=6, max_turns=10, episodes=3),
         "hidden: action-name permutation", "identify-then-BFS"),
        ("icl/RelabeledGrid-Medium-v0", "envs.relabeled_grid:RelabeledGrid",
         dict(rows=6, columns=6, wall_fraction=0.2, min_path=6, max_path=8, max_turns=10, episodes=3),
         "hidden: action-name permutation", "identify-then-BFS"),
        ("icl/RelabeledGrid-Hard-v0", "envs.relabeled_grid:RelabeledGrid",
         dict(rows=7, columns=7, wall_fraction=0.25, min_path=8, max_path=10, label_set="directions",
              max_turns=12, episodes=3),
         "hidden: permutation of up/down/left/right", "identify-then-BFS"),
    ],
    "hanoi": [
        ("icl/Hanoi-Easy-v0", "envs.hanoi:Hanoi", dict(num_disks=3, rule_probability=0.0, max_turns=14, episodes=3),
         "none (3 disks)", "optimal plan, 2^n-1"),
        ("icl/Hanoi-Medium-v0", "envs.hanoi:Hanoi", dict(num_disks=3, rule_probability=0.5, max_turns=30, episodes=3),
         "hidden: adjacent-peg rule (p=0.5)", "optimal plan, rule learned from a rejection"),
        ("icl/Hanoi-Hard-v0", "envs.hanoi:Hanoi", dict(num_disks=4, rule_probability=0.5, max_turns=90, episodes=3),
         "hidden: adjacent-peg rule (p=0.5)", "optimal plan, rule learned from a rejection"),
    ],
    "blocksworld": [
        ("icl/Blocksworld-Easy-v0", "envs.blocksworld:Blocksworld",
         dict(num_blocks=4, obfuscated=False, min_moves=4, max_turns=16, episodes=3),
         "none (plain action names)", "exact A* plan"),
        ("icl/Blocksworld-Medium-v0", "envs.blocksworld:Blocksworld",
         dict(num_blocks=5, obfuscated=True, min_moves=8, max_turns=24, episodes=3),
         "hidden: action-name meanings", "exact A* plan + name identification"),
        ("icl/Blocksworld-Hard-v0", "envs.blocksworld:Blocksworld",
         dict(num_blocks=6, obfuscated=True, min_moves=10, max_turns=28, episodes=3),
         "hidden: action-name meanings", "exact A* plan + name identification"),
    ],
    "sokoban": [
        ("icl/Sokoban-Easy-v0", "envs.sokoban:Sokoban",
         dict(height=6, width=6, num_boxes=1, min_moves=3, max_turns=20, episodes=3),
         "level (persists across episodes)", "BFS with dead squares"),
        ("icl/Sokoban-Medium-v0", "envs.sokoban:Sokoban",
         dict(height=6, width=6, num_boxes=2, min_moves=6, max_turns=30, episodes=3),
         "level (persists across episodes)", "BFS with dead squares"),
        ("icl/Sokoban-Hard-v0", "envs.sokoban:Sokoban",
         dict(height=7, width=7, num_boxes=3, min_moves=10, max_turns=50, episodes=3),
         "level (persists across episodes)", "BFS with dead squares"),
    ],
    # DeepPlanning-style tool-use planning: plain tiers are single episodes; Meta* are 3-episode trials
    # of one world with a hidden fact that only the checker's feedback reveals.
    "travel_planning": [
        ("icl/TravelPlanning-Easy-v0", "envs.planning.travel:TravelPlanning", dict(difficulty="easy"),
         "none (2 constraints + budget)", "witness plan"),
        ("icl/TravelPlanning-Medium-v0", "envs.planning.travel:TravelPlanning", dict(difficulty="medium"),
         "none (3 constraints + budget)", "witness plan"),
        ("icl/TravelPlanning-Hard-v0", "envs.planning.travel:TravelPlanning", dict(difficulty="hard"),
         "none (5 constraints + budget)", "witness plan"),
        ("icl/TravelPlanning-EasyDB-v0", "envs.planning.travel:TravelPlanning",
         dict(difficulty="easy", database_in_prompt=True), "none (database in the prompt)", "witness plan"),
        ("icl/TravelPlanning-MediumDB-v0", "envs.planning.travel:TravelPlanning",
         dict(difficulty="medium", database_in_prompt=True), "none (database in the prompt)", "witness plan"),
        ("icl/TravelPlanning-MetaPreference-v0", "envs.planning.travel:TravelPlanning",
         dict(difficulty="easy", hidden="preference", episodes=3), "hidden: unstated user preference",
         "witness plan (knows it)"),
        ("icl/TravelPlanning-MetaQuirk-v0", "envs.planning.travel:TravelPlanning",
         dict(difficulty="easy", hidden="quirk", episodes=3), "hidden: taxi surcharge or chain closing day",
         "witness plan (knows it)"),
        ("icl/TravelPlanning-MetaBudget-v0", "envs.planning.travel:TravelPlanning",
         dict(difficulty="easy", hidden="budget", episodes=3), "hidden: true budget below the stated one",
         "witness plan (knows it)"),
    ],
    "shopping_planning": [
        ("icl/ShoppingPlanning-Easy-v0", "envs.planning.shopping:ShoppingPlanning", dict(difficulty="easy"),
         "none (level 1: cheapest matches)", "exact best cart"),
        ("icl/ShoppingPlanning-Medium-v0", "envs.planning.shopping:ShoppingPlanning", dict(difficulty="medium"),
         "none (level 2: best rating within budget)", "exact best cart"),
        ("icl/ShoppingPlanning-Hard-v0", "envs.planning.shopping:ShoppingPlanning", dict(difficulty="hard"),
         "none (level 3: coupons)", "exact best cart"),
        ("icl/ShoppingPlanning-Meta-v0", "envs.planning.shopping:ShoppingPlanning",
         dict(difficulty="easy", hidden=True, episodes=3), "hidden: a brand the shopper refuses", "exact best cart (knows it)"),
    ],
}

# Optional interop: registered only where the library is installed; it is imported when an env is made.
if importlib.util.find_spec("textarena") is not None:
    _REGISTRY["textarena"] = [
        # TextArena seeds Python's global RNG at every reset, so these ids are not thread-safe.
        ("icl/TextArena-GuessTheNumber-v0", "envs.interop.textarena:TextArenaGame",
         dict(game_id="GuessTheNumber-v0", oracle_return=1.0, episodes=3), "hidden: the game's seed (secret 1-20)",
         "binary search (10 turns)"),
    ]
if gem_installed():
    _REGISTRY["gem"] = [
        # GEM seeds Python's and numpy's global RNGs at every reset, so these ids are not thread-safe.
        ("icl/GEM-GuessTheNumber-v0", "envs.interop.gem:GemGame",
         dict(game_id="game:GuessTheNumber-v0-hard", oracle_return=1.0, episodes=3),
         "hidden: the game's seed (secret 1-50)", "binary search (7 turns)"),
    ]


def _register_all() -> None:
    for family, rows in _REGISTRY.items():
        for env_id, entry_point, kwargs, hidden, oracle in rows:
            register(env_id, entry_point, kwargs, family=family, hidden=hidden, oracle=oracle)


_register_all()
# Installed packages' ids last, so a plugin can build on the icl/ ids (and never shadows them silently:
# gymnasium warns when an id is registered twice).
load_plugins()
