"""The notebooks run top to bottom (nbclient) on a real smoke sweep, and are stored without outputs."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bench.paths import PROJECT_ROOT
from bench.runs import sweep
from conftest import smoke_spec

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
@pytest.fixture(scope="module")
def smoke_experiment(tmp_path_factory, cifar_root) -> Path:
    root = tmp_path_factory.mktemp("nb-results")
    spec = smoke_spec(root / "nb.toml", root, experiment="nb", epochs=3,
                      criteria=("magnitude", "ostr", "random"), select_epochs="all")
    results = sweep.run_sweep(spec, 1, data_dir=str(cifar_root), progress=False)
    assert sorted(r["status"] for r in results) == ["done"] * 4
    return root / "nb"


def test_there_are_three_notebooks_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["comparison-table.ipynb", "degeneration-curves.ipynb",
                                           "kendall-tau.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, smoke_experiment, monkeypatch):
    monkeypatch.setenv("BENCH_REPORT_EXPERIMENT", str(smoke_experiment))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(path.parent)}}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "4 run(s), 0 not finished" in text
    if path.stem != "comparison-table":
        assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures were drawn
    else:
        assert "darts / ostr" in text and "nap / own cell" in text
