"""Shared fixtures: a small session, the repository's data and the CLI."""

import os
import pathlib
import shutil
import socket

import pytest

import rookery

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "sealions"
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def ctx():
    return rookery.connect(memory_limit="2G", partitions=2)


@pytest.fixture(scope="session")
def rookery_bin():
    """The CLI binary the test script built beside the extension."""
    path = os.environ.get("ROOKERY_BIN") or shutil.which("rookery")
    if not path or not os.path.exists(path):
        pytest.fail("set ROOKERY_BIN to the rookery binary (scripts/test.sh does)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
