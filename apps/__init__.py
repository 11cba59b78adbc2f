"""The top floor of MAGWorld: the commands that need the environments and the agents together.

Installed as ``magworld.apps``. Imports run one way — ``magworld`` (world, model, train, bench) <-
``magworld.envs`` <- ``magworld.agents`` <- ``magworld.apps`` — and nothing below imports this package.

* :mod:`~magworld.apps.cli` — the ``magworld`` console script (the command table);
* :mod:`~magworld.apps.rollout` — ``magworld rollout``: a headless episode of a scripted baseline -> mp4 + JSON;
* :mod:`~magworld.apps.play` — ``magworld play``: the keyboard viewer on a MAGWorld env;
* :mod:`~magworld.apps.speed` — ``magworld bench speed``: env frames/s, latency and cache vs history;
* :mod:`~magworld.apps.media` — the README's GIF and style grid (``python -m magworld.apps.media``);
* :mod:`~magworld.apps.worlds` — the world settings ``play`` and ``rollout`` share, validated once.
"""
