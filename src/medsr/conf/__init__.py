"""Hydra configs, shipped inside the package so the entry points work from any folder."""
