"""Scoring: metrics, event scores, evaluation, plots."""
