"""Evaluation, results tables, plots and the static leaderboard page.

`python -m leaderboard.evaluate agent=<name> suite=<name>` appends one row per trial to
`<output_dir>/results.jsonl`; `python -m leaderboard.render <dirs...>` turns rows into
leaderboard.{json,csv,md} and index.html (`--compare A B`: a paired comparison). `stats` holds the
intervals, `tables` the aggregation (`render` and `page` both import it; neither imports the other).
Submodules are imported on use (evaluation needs Hydra).
"""

__all__ = ["evaluate", "evaluate_config", "executors", "metadata", "page", "render", "results", "stats", "suites", "tables"]
