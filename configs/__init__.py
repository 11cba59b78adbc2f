"""Hydra configs for the ``magworld`` commands (a package so an installed console script finds them)."""
