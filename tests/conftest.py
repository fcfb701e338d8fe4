"""Shared fixtures: real servers on 127.0.0.1 (see :mod:`tests.servers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import TargetServer, TestCA


@pytest.fixture(scope="session")
def test_ca() -> Iterator[TestCA]:
    ca = TestCA()
    yield ca
    ca.cleanup()


@pytest.fixture(scope="session")
def target() -> Iterator[TargetServer]:
    """A plain-HTTP target server shared by the whole session."""
    with TargetServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_target(test_ca: TestCA) -> Iterator[TargetServer]:
    """An HTTPS target whose certificate (localhost, 127.0.0.1) is signed by ``test_ca``."""
    with TargetServer(tls=test_ca) as server:
        yield server
