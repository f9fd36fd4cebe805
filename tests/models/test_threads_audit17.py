"""Seventeenth round (the public API from several threads): the first model loads of a
process, made at once, all succeed."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_first_model_lookups_made_at_once_all_succeed() -> None:
    """Audit: `_ensure_loaded` marked the registry loaded before importing the model
    modules, so threads that looked a model up meanwhile got "unknown model 'exprnet_ens'"
    (1-3 of 4 threads in 4 of 5 runs). The imports are slowed here to make the window
    certain."""
    script = textwrap.dedent(
        """
        import threading, time
        from exprsim.models import registry

        real = registry.import_module

        def slow(name):
            time.sleep(0.05)
            return real(name)

        registry.import_module = slow
        errors = []
        start = threading.Barrier(4)

        def look():
            start.wait()
            try:
                registry.model_spec("exprnet_ens")
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=look) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(errors)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
