"""hfagp_common.limits: the memory estimate check."""

from __future__ import annotations

import pytest

from hfagp_common import limits


def test_a_request_beyond_the_available_memory_is_refused_with_the_estimate():
    limits.check_fits_in_memory(2**30, "a world", available=2 * 2**30)
    with pytest.raises(limits.TooLargeError, match=r"^a world needs about 3\.0 GiB of memory, and 2\.0 GiB are "
                                                   r"available"):
        limits.check_fits_in_memory(3 * 2**30, "a world", available=2 * 2**30)
    assert issubclass(limits.TooLargeError, ValueError)  # a user error under the CLI contract


def test_available_memory_is_read_on_linux():
    available = limits.available_memory_bytes()
    assert available is None or available > 2**26
