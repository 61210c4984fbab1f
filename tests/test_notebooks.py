"""The notebooks run top to bottom (nbclient) on a real smoke sweep and, given no experiment, on the
committed reference study; they are stored without outputs."""
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bench.atomic import read_jsonl
from bench.nb201 import benchmark
from bench.paths import PROJECT_ROOT
from bench.report.frames import SEARCH
from bench.runs import sweep
from bench.runs.runstore import Run, run_state
from bench.search.methods import METHODS
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
    outputs, _ = _execute(path)
    text = _text(outputs)
    assert "4 run(s), 0 not finished" in text
    if path.stem != "comparison-table":
        assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures were drawn
    else:
        assert "darts / ostr" in text and "nap / own cell" in text


REFERENCE = PROJECT_ROOT / "results" / "reference"
"""The committed reference study (examples/reference.toml): the notebooks' default experiment."""
PROBE = """import json
measured = frame.loc[frame["kind"] == "measured", ["label", "seeds"]]
print("PROBE " + json.dumps({"path": str(exp.path), "states": {r.run: r.state for r in exp.runs},
                             "table": measured.values.tolist(),
                             "final": final[["run", "criterion", "acc:cifar10_test"]].values.tolist()}))"""
"""Appended to comparison-table.ipynb: what its kernel computed, as JSON."""


def _execute(path: Path, probe: str | None = None) -> tuple[list, dict]:
    """Run a notebook top to bottom (plus ``probe``): its outputs, and the probe's JSON."""
    nb = nbformat.read(path, as_version=4)
    if probe:
        nb.cells.append(nbformat.v4.new_code_cell(probe))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if not probe:
        return outputs, {}
    printed = _text(nb.cells[-1].outputs)
    assert printed.startswith("PROBE "), printed
    return outputs, json.loads(printed[len("PROBE "):])


def _text(outputs: list) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) +
                     str(o.get("data", {}).get("text/markdown", "")) for o in outputs)


def _states(folder: Path) -> dict[str, str]:
    return {p.name: run_state(p) for p in sorted(folder.iterdir()) if (p / "config.json").exists()}


def _finished(folder: Path) -> list[str]:
    return [name for name, state in _states(folder).items() if state == "done"]


def _own_cell_accuracy(run: Path, truth) -> float | None:
    """cifar10_test of the cell a run's training derived at its last epoch (None for a method whose
    own cell is a criterion's selection, e.g. DARTS-fix-alpha's projection)."""
    method = Run(run).meta()["config"].get("method", "darts")
    if METHODS[method].cell_criterion is not None:
        return None
    last = Run(run).epochs()[-1]
    own = last.get("method") if isinstance(last.get("method"), dict) else {}
    return truth.lookup(own.get("cell") or last["cell"], ["cifar10_test"])["cifar10_test"]


def test_comparison_table_opens_the_reference_study_by_default(monkeypatch):
    """No experiment given: results/reference, finished runs only, each with its own cell's
    ground-truth accuracy (runs of a sweep still writing there may finish meanwhile: bounds)."""
    monkeypatch.delenv("BENCH_REPORT_EXPERIMENT", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = _finished(REFERENCE)
    assert before, f"{REFERENCE} holds no finished run: the committed reference study is missing"
    outputs, probe = _execute(PROJECT_ROOT / "notebooks" / "comparison-table.ipynb", PROBE)
    after = _finished(REFERENCE)
    assert Path(probe["path"]).resolve() == REFERENCE.resolve()
    shown = sorted(r for r, state in probe["states"].items() if state == "done")
    assert set(before) <= set(shown) <= set(after)
    assert {run for run, _, _ in probe["final"]} <= set(shown)  # nothing unfinished in a summary
    truth = benchmark.load_cached()
    own = {run: acc for run, criterion, acc in probe["final"] if criterion == SEARCH}
    for run in before:
        expected = _own_cell_accuracy(REFERENCE / run, truth)
        if expected is not None:
            assert own[run] == pytest.approx(expected, abs=1e-9)
    text = _text(outputs)
    assert f"{len(probe['states'])} run(s), {len(probe['states']) - len(shown)} not finished" in text
    assert f"{len(shown)} finished run(s)" in text  # the provenance footer of the Markdown table
    assert probe["table"] and all(seeds >= 1 for _, seeds in probe["table"])
    for label, _ in probe["table"]:  # a row with a note (a criterion off its own supernet) says "(note a)"
        assert re.search(rf"\| {re.escape(label)}( \(note [a-z]+\))? \| measured \|", text), label
    assert "| optimum (best cell per column) | reference |" in text


def _reference_copy(root: Path) -> tuple[Path, list[str]]:
    """Two finished reference runs as committed (no checkpoints), one of them again cut at half its
    epochs (no ``done``, a partial last line: a run still being written) and one not yet started."""
    finished = _finished(REFERENCE)[:2]
    assert finished, f"{REFERENCE} holds no finished run: the committed reference study is missing"
    out = root / "reference-copy"
    for name in finished:
        (out / name).mkdir(parents=True)
        for file in ("config.json", "epochs.jsonl", "selections.jsonl", "done"):
            if (REFERENCE / name / file).exists():
                shutil.copyfile(REFERENCE / name / file, out / name / file)
    source, partial = out / finished[0], out / "partial-run"
    partial.mkdir()
    shutil.copyfile(source / "config.json", partial / "config.json")
    lines = (source / "epochs.jsonl").read_text().splitlines(keepends=True)
    half = len(lines) // 2
    (partial / "epochs.jsonl").write_text("".join(lines[:half]) + lines[half][:40])
    kept = [r for r in read_jsonl(source / "selections.jsonl") if r["epoch"] <= half]
    (partial / "selections.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    (out / "pending-run").mkdir()
    shutil.copyfile(source / "config.json", out / "pending-run" / "config.json")
    return out, finished


@pytest.mark.parametrize("path", [NOTEBOOKS[0]] + [pytest.param(p, marks=pytest.mark.slow)
                                                  for p in NOTEBOOKS[1:]], ids=lambda p: p.stem)
def test_notebook_leaves_out_unfinished_runs_and_reads_no_checkpoint(path, tmp_path, monkeypatch):
    """The committed form of a study (no checkpoints) with a run cut mid-search and one not started:
    both listed as not finished, neither in a summary."""
    folder, finished = _reference_copy(tmp_path)
    monkeypatch.setenv("BENCH_REPORT_EXPERIMENT", str(folder))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    outputs, probe = _execute(path, PROBE if path.stem == "comparison-table" else None)
    text = _text(outputs)
    assert f"{len(finished) + 2} run(s), 2 not finished" in text
    assert "not finished: partial-run (incomplete, " in text
    assert "not finished: pending-run (pending, 0/" in text
    assert not list(folder.rglob("checkpoints")) and not list(folder.rglob("*.pt"))
    if probe:
        assert {run for run, _, _ in probe["final"]} <= set(finished)  # neither unfinished run
        assert {run for run, criterion, _ in probe["final"] if criterion == SEARCH} >= {
            run for run in finished if _own_cell_accuracy(folder / run, benchmark.load_cached()) is not None}
        assert "left out (not finished): partial-run" in text
    else:
        assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures were drawn
