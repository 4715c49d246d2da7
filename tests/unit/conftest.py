"""Fixtures shared by the fast tests of the managers' orchestration."""
from __future__ import annotations

import pytest

from tests.fixtures.fakes import World


@pytest.fixture
def world():
    """The fakes' shared world (what they made and left live), checked empty
    once the test is done."""
    w = World()
    yield w
    assert w.close() == []
