"""tests/optional.py: a missing optional dependency skips, or fails where it is required."""

import pytest

from tests.optional import need

MISSING = "touchstone_no_such_module"


def test_missing_dependency_skips_by_default(monkeypatch):
    monkeypatch.delenv("TOUCHSTONE_REQUIRE_BACKENDS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        need(MISSING)


def test_missing_dependency_fails_where_required(monkeypatch):
    monkeypatch.setenv("TOUCHSTONE_REQUIRE_BACKENDS", "1")
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        need(MISSING)


def test_present_dependency_is_the_module(monkeypatch):
    monkeypatch.setenv("TOUCHSTONE_REQUIRE_BACKENDS", "1")
    assert need("json").dumps([1]) == "[1]"
