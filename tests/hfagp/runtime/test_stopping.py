"""Stop requests (hfagp.runtime.stopping): a signal sets a flag, a second one interrupts, handlers are restored."""

from __future__ import annotations

import os
import signal

import pytest

from hfagp.runtime.stopping import StopRequest, TrainingError
from hfagp_common.cli import UserError


def test_a_signal_sets_the_flag_a_second_interrupts_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert stop.signal is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_training_error_is_a_user_error():
    assert issubclass(TrainingError, UserError) and issubclass(TrainingError, RuntimeError)
