"""The Hydra configs of `python -m trainers.orbit` and `python -m leaderboard.evaluate`, shipped as package data.

Both command lines find them as `pkg://configs`, so a wheel or a non-editable `pip install .` runs them
from any directory. `configs.cli` is what both command lines share: how they check a composed config
and how they report a bad one.
"""
