"""The example notebook runs from top to bottom (nbclient), so it cannot
rot; it is committed without outputs."""

import json
import re
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK = REPO / "examples" / "notebooks" / "sealions.ipynb"


def test_the_notebook_is_committed_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None


def test_the_sealion_notebook_runs(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert html.count("data:image/png;base64,") >= 4  # the frames' thumbnails
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # dots and the chart
    submission = (REPO / "out" / "notebook" / "sub_baseline.csv").read_text().splitlines()
    assert submission[0] == "test_id,adult_males,subadult_males,adult_females,juveniles,pups"
    assert len(submission) == 1 + len(list((REPO / "data" / "sealions" / "Test").glob("*.jpg")))
    assert all(re.fullmatch(r"\d+(,\d+){5}", line) for line in submission[1:])
