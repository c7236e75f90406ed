"""The "Use with..." snippets of docs/integrations.md, by their heading, for the integration tests that run them."""

import re
from pathlib import Path
from typing import Any

import pytest

INTEGRATIONS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def use_with_snippets() -> dict[str, str]:
    """``## heading`` -> its python code, from docs/integrations.md."""
    section = INTEGRATIONS.read_text()
    snippets = {}
    for part in section.split("\n## ")[1:]:
        heading, body = part.split("\n", 1)
        code = re.search(r"```python\n(.*?)```", body, re.S)
        if code:
            snippets[heading.strip()] = code.group(1)
    return snippets


SNIPPETS = use_with_snippets()


def run_snippet(heading: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(SNIPPETS[heading], f"docs/integrations.md: {heading}", "exec"), namespace)
    return namespace


@pytest.fixture
def plain_loop(tmp_path, monkeypatch) -> dict[str, Any]:
    """The namespace after the first snippet (data, make_model), run in a temporary directory."""
    monkeypatch.chdir(tmp_path)
    return run_snippet("A plain loop", {"__name__": "readme"})
