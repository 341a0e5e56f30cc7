"""`run`'s signal handling (issue 17): SIGHUP ends the session like SIGTERM; clean-up is not
cut short by a second signal."""

from __future__ import annotations

import os
import signal

import pytest

from coi_sentinel.sessions.session import StopRequested, _no_interrupts, on_sigterm_stop

pytestmark = pytest.mark.unit


@pytest.fixture
def handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_request_a_stop(handlers, sig, capfd):
    on_sigterm_stop()
    with pytest.raises(StopRequested) as info:
        os.kill(os.getpid(), sig)
        signal.sigtimedwait([], 0.1)        # let the handler run
    assert info.value.args == (signal.Signals(sig).name,)
    if sig == signal.SIGHUP:
        assert "coi-sentinel: hangup: ending the session (state saved)" in capfd.readouterr().err


def test_clean_up_is_not_cut_short(handlers):
    on_sigterm_stop()
    done = []
    with _no_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
        done.append("clean-up finished")
    assert done == ["clean-up finished"]
    with pytest.raises(KeyboardInterrupt):     # Ctrl-C is held, then raised
        with _no_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("again")
    assert done[-1] == "again"
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL    # run's handler is back
