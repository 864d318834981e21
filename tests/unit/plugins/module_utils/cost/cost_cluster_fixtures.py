"""Fixtures of the cost tests: the mixed cluster of cost_fixtures.py, fresh per test (imported by
the tests that use them: a conftest.py here would shadow `from conftest import` elsewhere)."""

import pytest
from cost_fixtures import mixed_nodes_data, mixed_pods_data


@pytest.fixture
def mixed_nodes():
    return mixed_nodes_data()


@pytest.fixture
def mixed_pods():
    return mixed_pods_data()
