"""The MCP peers `make install` sets up, as fixtures that fail when one is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / ".venv" / "peers"
SERVERS = Path(__file__).resolve().parent / "servers"
MCP1_CLIENT = Path(__file__).resolve().parent / "peers" / "mcp1_client.py"


def _installed(path: Path, what: str) -> Path:
    if not path.is_file():
        pytest.fail(f"{what} is not installed at {path}: run `make install`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def mcp1_python() -> Path:
    """The python of the venv that holds an `mcp<2` client."""
    return _installed(PEERS / "mcp1" / "bin" / "python", "the mcp<2 client's venv")


@pytest.fixture(scope="session")
def inspector() -> Path:
    """MCP Inspector's launcher (`inspector --cli ...` is its CLI mode)."""
    return _installed(
        PEERS / "inspector" / "node_modules" / ".bin" / "mcp-inspector", "MCP Inspector"
    )
