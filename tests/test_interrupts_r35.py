"""Round 35 (a library inside another app): a host's own SIGTERM handler runs while
exprsim holds interrupts (it was replaced by the hold, and the signal only logged)."""

from __future__ import annotations

import os
import signal

from exprsim.interrupts import hold_interrupts, reset_interruption, terminate_as_interrupt


def test_a_hosts_sigterm_handler_still_runs() -> None:
    calls: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with hold_interrupts("the partial result") as held:
            os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGTERM] and not held
    finally:
        signal.signal(signal.SIGTERM, before)


def test_exprsims_own_sigterm_is_still_held() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        terminate_as_interrupt()
        with hold_interrupts("the partial result") as held:
            os.kill(os.getpid(), signal.SIGTERM)
        assert held.signals == ["SIGTERM"]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        reset_interruption()
