"""The one Hypothesis internal the plugin relies on, pinned by a test so that a Hypothesis
release that changes it fails here instead of silently.

properties/plugin.py changes a collected test's settings for one run (no shrinking for a
known divergence; coverage.TOPUP examples for a class top-up) through the test's
``_hypothesis_internal_use_settings``, the attribute Hypothesis' own pytest plugin reads and
replaces for the same purpose (hypothesis/_hypothesis_pytestplugin.py). Hypothesis has no
public way to change an already decorated test's settings (``@settings`` may be applied once).
"""

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from properties.plugin import _shrinkless


def _counting_test():
    calls = []

    @given(data=st.data())
    def test(data):
        calls.append(data.draw(st.integers(0, 10**6)))
        assert calls[-1] < 0 or len(calls) < 4  # fails on the 4th example

    return test, calls


def test_replaced_settings_set_the_number_of_examples():
    test, calls = _counting_test()
    test._hypothesis_internal_use_settings = settings(max_examples=3, database=None,
                                                      phases=[Phase.generate])
    test()
    assert len(calls) == 3


def test_shrinkless_settings_stop_shrinking():
    test, calls = _counting_test()
    base = settings(max_examples=10, database=None, derandomize=True)
    test._hypothesis_internal_use_settings = _shrinkless(base)
    try:
        test()
    except AssertionError:
        pass
    else:
        raise AssertionError("the 4th example should fail")
    # found on the 4th call, replayed once, never shrunk
    assert len(calls) <= 5, len(calls)
