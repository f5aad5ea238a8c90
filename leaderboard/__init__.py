"""Evaluation, results tables, plots and the static leaderboard page."""
