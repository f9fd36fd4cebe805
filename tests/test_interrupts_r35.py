"""Round 35 (a library inside another app): a host's own SIGTERM handler runs once
exprsim's held interrupts end (it was replaced by the hold, and the signal only logged)."""

from __future__ import annotations

import os
import signal

from exprsim.interrupts import hold_interrupts, reset_interruption, terminate_as_interrupt


def test_a_hosts_sigterm_handler_runs_once_the_block_ends() -> None:
    """Held, the host's handler (a graceful shutdown) never ran; not held (the first fix),
    Ray's `sys.exit` handler stopped its own shutdown half-way: it runs after the block."""
    calls: list[str] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append("host"))
    try:
        with hold_interrupts("the partial result") as held:
            os.kill(os.getpid(), signal.SIGTERM)
            calls.append("block went on")
        assert calls == ["block went on", "host"] and held.signals == ["SIGTERM"]
        calls.clear()
        with hold_interrupts("the partial result"):  # a second one: given at once
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            calls.append("block went on")
        assert calls == ["host", "block went on"]
        assert signal.getsignal(signal.SIGTERM) is not None
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
