"""The README's quickstart must run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_snippet_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md:quickstart", "exec"), namespace)
    sched = namespace["sched"]
    assert len(sched.history) == 4 and all(r.lr > 0 for r in sched.history)
    assert namespace["opt"].param_groups[0]["lr"] == sched.get_last_lr()[0]
    assert capsys.readouterr().out.count("epoch") == 3


def test_readme_names_the_two_commands_and_every_option():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    import inspect

    from lipschitz_lr import AdaptiveLR

    options = [p for p in inspect.signature(AdaptiveLR).parameters if p not in ("optimizer", "model", "last_epoch")]
    missing = [p for p in options if f"`{p}`" not in text]
    assert not missing, f"README options table misses {missing}"


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_extending_names_real_registries_and_tests():
    """Every row of "Extending": its registry is defined in the file named, and its tests exist."""
    repo = README.parent
    rows = [line for line in _section(README.read_text(), "Extending").splitlines() if line.startswith("| a")]
    assert len(rows) == 8
    for row in rows:
        _, _, registry, _, tests, _ = row.split("|")
        paths = re.findall(r"`([\w/]+(?:\.py|/))`", registry + tests)
        assert paths, row
        for path in paths:
            assert (repo / path).exists(), f"README Extending names {path}, which does not exist"
        symbol = re.search(r"`: `(\w+)`", registry)
        if symbol:
            source = (repo / re.search(r"`([\w/]+\.py)`", registry).group(1)).read_text()
            assert re.search(rf"^{symbol.group(1)}\b.*=", source, re.M), f"{symbol.group(1)} not defined in {registry}"


def test_development_table_names_real_files():
    repo = README.parent
    for path in re.findall(r"`((?:lipschitz_lr|experiments|paper_figures|tests)/[\w/]*(?:\.py)?)`", README.read_text()):
        assert (repo / path).exists(), f"README names {path}, which does not exist"
