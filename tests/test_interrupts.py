"""hold_interrupts: one Ctrl-C is held while a partial result is saved, a second one is not."""

from __future__ import annotations

import logging
import signal
import threading

import pytest

from exprsim.interrupts import hold_interrupts


def test_the_first_ctrl_c_is_held_the_second_interrupts(caplog):
    before = signal.getsignal(signal.SIGINT)
    done = []
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(KeyboardInterrupt),
        hold_interrupts("the partial report"),
    ):
        signal.raise_signal(signal.SIGINT)  # held: the block goes on
        done.append("saved")
        signal.raise_signal(signal.SIGINT)  # the escape hatch
        done.append("never")
    assert done == ["saved"]
    assert "finishing the partial report first" in caplog.text
    assert signal.getsignal(signal.SIGINT) is before  # restored
    with pytest.raises(KeyboardInterrupt):  # and Ctrl-C is ordinary again
        signal.raise_signal(signal.SIGINT)


def test_outside_the_main_thread_nothing_is_held():
    seen = []

    def work():
        with hold_interrupts("x"):
            seen.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [signal.default_int_handler]  # no handler set (Python refuses it there)
