"""notebooks/analysis.ipynb runs top to bottom on the committed experiments/*/RESULTS.csv."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_analysis_notebook_executes_on_the_committed_results():
    notebook = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for name in ("order_objectives", "shuffle_locality", "ner_report", "peft_modes", "translation"):
        assert f"{name}: " in printed
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 5  # one per experiment
