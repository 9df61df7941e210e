"""Experiments made of many jobs: repeats of one job and hyperparameter sweeps."""
