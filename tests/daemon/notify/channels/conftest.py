"""Fixtures for the channel tests: the provider fake on a real local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from tests.daemon.notify.providers import ProviderFake


@pytest.fixture
def provider(httpserver: HTTPServer) -> Iterator[ProviderFake]:
    fake = ProviderFake(httpserver)
    try:
        yield fake
    finally:
        fake.release()
