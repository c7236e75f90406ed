"""The notebooks are committed with their outputs (``make notebooks``), small enough to review, and run top to
bottom on CPU."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_two_notebooks_are_committed_with_their_outputs():
    assert [p.name for p in NOTEBOOKS] == ["quickstart.ipynb", "reproduction.ipynb"]
    for path in NOTEBOOKS:
        code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), f"{path.name}: make notebooks"
        outputs = [output for cell in code for output in cell.outputs]
        assert outputs and not [o for o in outputs if o.output_type == "error"], path.name
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
        assert path.stat().st_size < 400_000, f"{path.name} is too large to review"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, data_dir, monkeypatch):
    monkeypatch.setenv("LIPSCHITZ_LR_DATA", str(data_dir))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_the_quickstart_uses_the_library_alone():
    """The quickstart is for practitioners: lipschitz_lr, torch and torchvision, not the paper's harness."""
    source = "\n".join(cell.source for cell in nbformat.read(NOTEBOOKS[0], as_version=4).cells)
    assert "from lipschitz_lr import AdaptiveLR" in source and "lipschitz_lr_experiments" not in source
