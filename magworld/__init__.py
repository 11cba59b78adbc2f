"""MAGWorld: the MAG (Memorize-and-Generate) world model and its procedural ground-truth worlds.

The library imports neither gymnasium nor pygame; the Gymnasium environment lives in ``envs``.
"""

__version__ = "0.1.0"
