"""SIGTERM handled as Ctrl-C (``tuner.signals``), in this process: raised, remembered for loops that
swallow it, and a program's own handler left alone on request."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tuner.signals import sigterm_as_interrupt, stop_requested


def _term() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)  # the handler runs at the next bytecode boundary, well within this


def test_sigterm_inside_the_block_is_a_keyboard_interrupt_and_the_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        _term()
    assert signal.getsignal(signal.SIGTERM) is before and stop_requested()


def test_a_swallowed_interrupt_is_still_seen_by_loops_until_the_next_block():
    with sigterm_as_interrupt():
        try:
            _term()
        except KeyboardInterrupt:
            pass  # what a library loop might do (Ray's), or a command that stops on it (`regtuner ui`)
        assert stop_requested()
    with sigterm_as_interrupt():
        assert not stop_requested()


def test_a_programs_own_handler_is_kept_when_asked_and_replaced_otherwise():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with sigterm_as_interrupt(keep_own=True):
            _term()
        assert calls == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
            _term()
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
