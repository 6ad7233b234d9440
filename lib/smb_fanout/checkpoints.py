"""Named steps inside the jobs, where tests kill the process or run code in between.

When the environment variable `SMB_FANOUT_KILL_AT` names a step, the process
sends itself SIGKILL on reaching it. Crash-safety tests use this to stop a job
between two writes, the way a lost cluster or an out-of-memory kill would.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

logger = logging.getLogger(__name__)

KILL_AT_VARIABLE = "SMB_FANOUT_KILL_AT"

_listeners: dict[str, list[Callable[[], None]]] = {}


def reached(step: str) -> None:
    """Mark that the running job reached `step`, for example `stats.hourly_merged`."""
    for listener in _listeners.get(step, []):
        listener()
    if os.environ.get(KILL_AT_VARIABLE) == step:
        logger.warning("killing this process at step %s because %s is set", step, KILL_AT_VARIABLE)
        os.kill(os.getpid(), signal.SIGKILL)


def on_step(step: str, listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` each time a job reaches `step`; returns a function that removes it."""
    _listeners.setdefault(step, []).append(listener)
    return lambda: _listeners[step].remove(listener)
