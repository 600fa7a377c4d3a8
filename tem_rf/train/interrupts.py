"""Ctrl-C while a run trains, acted on between steps.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be, and during
training that is often inside TensorFlow or Keras code, which may catch it or be left half done
(a run was seen to train on to its last epoch after a Ctrl-C). While a run trains, SIGINT only
sets a flag, and the loop raises ``KeyboardInterrupt`` itself at the next step or epoch boundary
(`stop_if_interrupted`), where nothing is half written; the binary then says so in one line and
exits 130 (`tem_rf.core.cli`), and the run resumes from its last checkpoint. A second Ctrl-C
stops at once, as Python would, for a step that never ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def interrupts_between_steps() -> Iterator[Callable[[], None]]:
    """Within the block SIGINT sets a flag; yields the check that raises ``KeyboardInterrupt``
    when it is set. Outside the main thread (where no handler can be set) the check does nothing
    and SIGINT keeps Python's own behaviour."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def handler(number, frame) -> None:
        if received:  # the second Ctrl-C: at once
            signal.default_int_handler(number, frame)
        received.append(number)

    def stop_if_interrupted() -> None:
        if received:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop_if_interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["interrupts_between_steps"]
