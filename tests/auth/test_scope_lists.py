"""The clients that offer scopes to choose from (kvctl's --scope help, the console's checkboxes) offer
exactly the server's: a scope added to the API reaches both, or this fails."""

from __future__ import annotations

import re
from pathlib import Path

from app.platform.security import SCOPES
from kvctl.api_keys import SCOPES as KVCTL_SCOPES

CONSOLE_API_KEYS = Path(__file__).resolve().parents[2] / "app" / "console" / "static" / "js" / "apikeys.js"


def test_kvctl_offers_the_servers_scopes() -> None:
    assert KVCTL_SCOPES == SCOPES


def test_the_console_offers_the_servers_scopes() -> None:
    source = CONSOLE_API_KEYS.read_text()
    listed = re.search(r"const SCOPES = \[(.*?)\];", source, re.DOTALL)
    assert listed is not None, "apikeys.js no longer declares its SCOPES list"
    assert tuple(re.findall(r'"([^"]+)"', listed.group(1))) == SCOPES
