"""The README lands (short, its quickstart runs, the two commands), every relative link in it and in docs/
resolves, the generated options page is current, and CONTRIBUTING's tables name real files and registries."""

import re
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
DOCS = [README, CONTRIBUTING, *sorted((REPO / "docs").glob("*.md")), REPO / "results" / "README.md"]


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


def test_the_averaging_recipe_runs_and_evaluates_the_average(capsys):
    """docs/usage.md's recipe (the best no-tuning configuration of results/benchmarks.md, section d2): it trains,
    AdaptiveLR sets the rate, and the evaluated model is the average, BatchNorm recomputed there."""
    text = (REPO / "docs" / "usage.md").read_text()
    section = text[text.index("## Averaging the weights") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/usage.md:averaging", "exec"), namespace)
    sched, average, model = namespace["sched"], namespace["average"], namespace["model"]
    assert len(sched.history) == 4 and sched.resolved.warmup_steps == 16
    assert int(average.n_averaged) == 3 * 16  # one update per optimizer step
    averaged, trained = average.module[0].weight, model[0].weight
    assert not torch.equal(averaged, trained)  # the average is another set of weights
    assert not torch.equal(average.module[1].running_mean, model[1].running_mean)  # its own BatchNorm statistics
    printed = capsys.readouterr().out
    assert printed.count("accuracy of the average") == 3 and namespace["accuracy"] > 0.25


def test_the_readme_is_a_landing_page_with_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert len(text.splitlines()) <= 200, "README.md is a landing page: the long form lives in docs/"


def test_every_relative_link_resolves():
    for page in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to {target}, which does not exist"


#: A pointer in a docstring or comment to a section of a page: ``docs/fidelity.md, "Reference mode and clean mode"``.
POINTER = re.compile(r'((?:README|CONTRIBUTING)(?:\.md)?|docs/\w+\.md),? "([^"]+)"')
SOURCES = ["lipschitz_lr", "experiments", "paper_figures", "benchmarks", "notebooks"]


def test_every_section_the_code_points_at_exists():
    """The code names a page and its section; both must exist (sections move: the pointer must follow)."""
    pointers = 0
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            for page, section in POINTER.findall(path.read_text()):
                pointers += 1
                page = page if page.endswith(".md") else f"{page}.md"
                headings = [
                    line.lstrip("#").strip() for line in (REPO / page).read_text().splitlines() if line.startswith("#")
                ]
                assert section in headings, f"{path.relative_to(REPO)} points at {page}, {section!r}: no such section"
    assert pointers >= 5  # the pattern still finds the pointers


def test_the_options_page_is_generated_from_the_options():
    from lipschitz_lr.options import names, options_markdown

    text = (REPO / "docs" / "options.md").read_text()
    assert text == options_markdown(), "docs/options.md is stale: run make docs"
    assert all(f"| `{name}` |" in text for name in names())


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_extending_names_real_registries_and_tests():
    """Every row of "Extending": its registry is defined in the file named, and its tests exist."""
    rows = [line for line in _section(CONTRIBUTING.read_text(), "Extending").splitlines() if line.startswith("| a")]
    assert len(rows) == 8
    for row in rows:
        _, _, registry, _, tests, _ = row.split("|")
        paths = re.findall(r"`([\w/]+(?:\.py|/))`", registry + tests)
        assert paths, row
        for path in paths:
            assert (REPO / path).exists(), f"CONTRIBUTING Extending names {path}, which does not exist"
        symbol = re.search(r"`: `(\w+)`", registry)
        if symbol:
            source = (REPO / re.search(r"`([\w/]+\.py)`", registry).group(1)).read_text()
            assert re.search(rf"^{symbol.group(1)}\b.*=", source, re.M), f"{symbol.group(1)} not defined in {registry}"


def test_development_table_names_real_files():
    pattern = r"`((?:lipschitz_lr|experiments|paper_figures|tests|benchmarks|docs)/[\w/]*(?:\.py|\.md)?)`"
    for page in (README, CONTRIBUTING):
        for path in re.findall(pattern, page.read_text()):
            assert (REPO / path).exists(), f"{page.name} names {path}, which does not exist"


def test_every_slurm_option_is_in_the_slurm_section_of_the_reproducing_page():
    from lipschitz_lr_experiments.cli import build_parser

    reproduce = next(
        action.choices["reproduce"] for action in build_parser()._actions if getattr(action, "choices", None)
    )
    options = {option for action in reproduce._actions for option in action.option_strings if "slurm" in option}
    page = (REPO / "docs" / "reproducing.md").read_text()
    section = page[page.index("**On a SLURM cluster.**") : page.index("**Preemption and time limits.**")]
    missing = sorted(o for o in options if f"`{o}" not in section and o != "--slurm-timeout-min")
    assert not missing, f"docs/reproducing.md's SLURM section does not name {missing}"
