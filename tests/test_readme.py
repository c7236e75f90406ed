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
