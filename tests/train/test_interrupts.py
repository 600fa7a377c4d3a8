"""Ctrl-C while training: a flag acted on between steps (tem_rf.train.interrupts)."""

import os
import signal
import threading

import pytest

from tem_rf.train.interrupts import interrupts_between_steps


def test_ctrl_c_waits_for_the_next_check_and_a_second_one_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    with interrupts_between_steps() as stop_if_interrupted:
        stop_if_interrupted()  # nothing received: goes on
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, and only sets the flag
        with pytest.raises(KeyboardInterrupt):
            stop_if_interrupted()
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C raises where the code is
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**6):  # the handler runs between bytecodes
                pass
    assert signal.getsignal(signal.SIGINT) is before  # Python's own handler is back


def test_outside_the_main_thread_nothing_changes():
    seen = []

    def worker():
        with interrupts_between_steps() as stop_if_interrupted:
            seen.append(signal.getsignal(signal.SIGINT))
            stop_if_interrupted()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]
