"""README's examples, read as the tests that run them need them."""

from __future__ import annotations

import json
import re

from tests.support.paths import REPO


def json_documents(text: str) -> list[dict]:
    """The JSON documents printed one after the other (curl adds no newline)."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


def readme_block(heading: str) -> str:
    """The first ```sh block under ``heading`` in README.md."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(f"\n{heading}\n") :]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert match, f"no sh block under {heading}"
    return match.group(1)
