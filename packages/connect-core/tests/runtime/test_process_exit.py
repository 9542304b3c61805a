"""``lifecycle.exit_process``: how a connector process ends once its runtime has returned.

Run as real processes: the property is about what the interpreter does after ``main`` returns.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: The process under test: unflushed stdout (a pipe is block-buffered), one log line, a non-daemon
#: thread that never ends (as a library might leave behind), then ``exit_process(3)``.
SCRIPT = textwrap.dedent(
    """
    import logging, sys, threading
    from danube_connect_core.lifecycle import exit_process
    from danube_connect_core.logging_setup import configure_logging

    configure_logging("info", "json")
    logging.getLogger("danube_connect.test").info("drained, exiting")
    sys.stdout.write("last words without a newline")
    threading.Thread(target=threading.Event().wait, daemon=False).start()
    exit_process(3)
    """
)


def test_exit_process_flushes_output_keeps_the_code_and_is_not_held_by_a_leftover_thread() -> None:
    # With sys.exit(3) this process would never end: interpreter shutdown joins the non-daemon thread.
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "last words without a newline"
    assert '"message":"drained, exiting"' in done.stderr, done.stderr
