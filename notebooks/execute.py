"""Run every notebook here top to bottom and save it with its outputs (``make notebooks``).

Volatile metadata (execution timestamps, the kernel's version) is dropped so that a rerun changes only
what the notebook shows. MNIST is read from ``$LIPSCHITZ_LR_DATA``, else from ``data/`` at the
repository root (downloaded there when missing and online).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    notebook.metadata.get("language_info", {}).pop("version", None)
    return notebook


if __name__ == "__main__":
    for path in sorted(HERE.glob("*.ipynb")):
        nbformat.write(execute(path), path)
        print(f"{path.name}: executed, {path.stat().st_size // 1024} KiB", file=sys.stderr)
