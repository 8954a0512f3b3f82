"""Known gaps of the bad-input suite (see KNOWN_GAPS)."""

# Cases of tests/faults/test_bad_inputs.py that fail today (expected failures, strict: a fixed case must leave
# this list). Each names what the command does instead of a clean one-line error naming the problem.
KNOWN_GAPS: dict = {}
# Known gaps whose command does real work before it fails (minutes of CPU): not run.
NOT_RUN: set = set()
