"""Envs in worker processes (async vector envs, SB3's ``SubprocVecEnv``). **Fork safety**: torch's thread pool does
not survive ``fork``, so :func:`forked_after_torch` tells the model backend to run such a child on one thread.
**Lifetime**: :func:`exit_with_parent` — a worker never outlives its parent (Linux: the kernel kills it when the
parent *thread* that started it ends, so build vector envs in a long-lived thread; elsewhere a watchdog thread)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_torch_before_fork = False  # True in a process forked (directly or not) from one that had imported torch


def _after_fork_in_child() -> None:
    global _torch_before_fork
    _torch_before_fork = _torch_before_fork or "torch" in sys.modules


os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_after_torch() -> bool:
    """Whether this process was forked from one that had imported torch (its thread pool is unusable here)."""
    return _torch_before_fork


def exit_with_parent() -> None:
    """In a multiprocessing child: end this process as soon as its parent process ends; elsewhere nothing."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # works even if this process hangs
        if os.getppid() != parent.pid:  # the parent ended before the request
            os._exit(1)
    else:  # pragma: no cover - platform dependent
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True, name="exit-with-parent").start()
