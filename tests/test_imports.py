"""The project's packages import each other without cycles, and install under names of their own."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Installed package name -> its folder (pyproject's package-dir).
PACKAGES = {
    "lipschitz_lr": REPO / "lipschitz_lr",
    "lipschitz_lr_experiments": REPO / "experiments" / "lipschitz_lr_experiments",
    "lipschitz_lr_paper_figures": REPO / "paper_figures" / "lipschitz_lr_paper_figures",
}


def project_modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, whether it is a package's __init__)."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            is_init = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_init else parts)] = (path, is_init)
    return modules


def import_graph(modules: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """Every import anywhere in a module (also inside functions), resolved to the project's modules."""
    graph: dict[str, set[str]] = {}
    for name, (path, is_init) in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_init else 0)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    targets.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_each_package_folder_bears_its_import_name():
    """What a reader opens on disk is what they import: experiments/lipschitz_lr_experiments/train.py is
    lipschitz_lr_experiments.train, and the design's top-level folders hold the packages."""
    import importlib

    for name, folder in PACKAGES.items():
        assert folder.name == name and folder.parent.name in ("main", REPO.name, "experiments", "paper_figures")
        assert Path(importlib.import_module(name).__file__).resolve().parent == folder.resolve()


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    graph = import_graph(project_modules())
    assert len(graph) > 30 and graph["lipschitz_lr_experiments.train"] >= {"lipschitz_lr_experiments.loop"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_packages():
    """lipschitz_lr <- lipschitz_lr_experiments <- lipschitz_lr_paper_figures, never back."""
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph(project_modules()).items():
        source = module.split(".")[0]
        packages.setdefault(source, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != source)
    cycle = find_cycle(packages)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)
    assert packages == {
        "lipschitz_lr": set(),
        "lipschitz_lr_experiments": {"lipschitz_lr"},
        "lipschitz_lr_paper_figures": {"lipschitz_lr_experiments"},
    }


def test_the_wheel_installs_only_names_of_this_project(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert top == {*PACKAGES, "lipschitz_lr-0.1.0.dist-info"}
    assert "lipschitz_lr_experiments/configs/mnist_sgd.toml" in zipfile.ZipFile(wheel).namelist()
