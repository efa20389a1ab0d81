"""Run an analysis notebook headless with nbclient, pointed at one experiment.

The experiment path goes in as a cell injected right after the cell tagged "parameters"
(the papermill convention), so the notebook's own default stays untouched on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ..errors import AnalysisError

# The kernel starts here so `import analysis` finds this very copy of the package.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def execute(nb_path: str | os.PathLike[str], experiment: str | os.PathLike[str], timeout: int = 120,
            out_path: str | os.PathLike[str] | None = None) -> nbformat.NotebookNode:
    """Execute every cell (kernel python3); a failing cell raises nbclient's CellExecutionError.

    Returns the executed notebook, also written to ``out_path`` when given.
    """
    nb_path = Path(nb_path)
    if not nb_path.is_file():
        raise AnalysisError(f"notebook not found: {nb_path}")
    if not Path(experiment).is_dir():
        raise AnalysisError(f"experiment directory not found: {experiment}")
    notebook = nbformat.read(nb_path, as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    if not tagged:
        raise AnalysisError(f"{nb_path} has no cell tagged 'parameters'")
    injected = nbformat.v4.new_code_cell(f"EXPERIMENT = {str(Path(experiment).resolve())!r}",
                                         metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(tagged[0] + 1, injected)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(PROJECT_ROOT)}}).execute()
    if out_path is not None:
        nbformat.write(notebook, out_path)
    return notebook
