"""A procedural talking-head world with ground truth (docstring completed below)."""
