"""The committed reference study regenerates: ``results/reference/report`` equals a fresh
``report all`` over the run records it names, with no checkpoint and no machine path."""
from __future__ import annotations

import re
import shutil

from bench import paths
from bench.report import build

REFERENCE = paths.PROJECT_ROOT / "results" / "reference"
REPORT = REFERENCE / "report"
TABLES = ("table.md", "table.csv", "table.tex", "tau.md", "tau.csv", "paired.md", "paired.csv")
RECORDS = ("config.json", "epochs.jsonl", "selections.jsonl", "done")
PROVENANCE = re.compile(r"^[-#%\\ ]*(commit |benchmark |profiles as run|.*generated \d{4}-)")


def committed_runs() -> list[str]:
    """The run folders the committed report was made from (its index names them)."""
    text = (REPORT / "index.md").read_text()
    match = re.search(r"^Runs: (.+)$", text, re.MULTILINE)
    assert match, "index.md names no runs"
    return [name.strip(" `") for name in match.group(1).split(",")]


def without_provenance(text: str) -> list[str]:
    """The lines of a table file other than its provenance footer (commit, table path, date)."""
    return [line for line in text.splitlines() if not PROVENANCE.match(line)]


def test_the_committed_report_equals_a_fresh_render(tmp_path, table_path):
    runs = committed_runs()
    assert runs
    copy = tmp_path / "reference"
    for run in runs:
        for name in RECORDS:
            if (REFERENCE / run / name).exists():
                (copy / run).mkdir(parents=True, exist_ok=True)
                shutil.copy(REFERENCE / run / name, copy / run / name)
    files = build.run("all", str(copy), benchmark=str(table_path), out=str(tmp_path / "report"))
    for name in TABLES:
        assert name in files
        fresh = without_provenance(files[name].read_text())
        committed = without_provenance((REPORT / name).read_text())
        assert fresh == committed, f"{name} differs from a fresh render"
    fresh_runs = re.search(r"^Runs: (.+)$", files["index.md"].read_text(), re.MULTILINE).group(1)
    assert [name.strip(" `") for name in fresh_runs.split(",")] == runs
    assert "![accuracy vs epoch](accuracy-vs-epoch.png)" in (REPORT / "index.md").read_text()
    assert (REPORT / "accuracy-vs-epoch.png").stat().st_size > 10_000


def test_the_committed_files_name_no_machine_path():
    kinds = (".json", ".jsonl", ".md", ".csv", ".tex")
    tracked = [p for p in REFERENCE.rglob("*") if p.is_file() and p.suffix in kinds]
    assert tracked
    for path in tracked:
        text = path.read_text()
        for pattern in ("/work/", "/home/", "/tmp/", "/root/", "C:\\\\"):
            assert pattern not in text, f"{path} names a machine path ({pattern})"


def markdown_rows(lines: list[str]) -> list[list[str]]:
    """The cells of a Markdown table's rows (header first, the rule line left out)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return [row for row in rows if not set("".join(row)) <= set("-: ")]


def test_the_readme_table_is_the_reports():
    """Every number of the hand-written summary table in the README is the report's, to the digit:
    a row ``| method | criterion (note) | ...`` is the report's row ``method / criterion``, a
    ``| benchmark | label |`` row its reference row ``label``; columns are matched by heading."""
    readme = (REFERENCE / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(readme) if line.startswith("## The table"))
    body = []
    for line in readme[start + 1:]:
        if line.startswith("|"):
            body.append(line)
        elif body:
            break
    head, *rows = markdown_rows(body)
    report_head, *report_rows = markdown_rows([line for line in (REPORT / "table.md").read_text().splitlines()
                                               if line.startswith("|")])
    report = {re.sub(r" \(note [a-z]+\)$", "", row[0]): dict(zip(report_head, row)) for row in report_rows}
    assert len(rows) >= 5 and head[2:]
    for row in rows:
        label = row[1] if row[0] == "benchmark" else f"{row[0]} / {row[1].split(' (')[0]}"
        assert label in report, f"README row {label!r} is not in report/table.md"
        for heading, value in zip(head[2:], row[2:]):
            assert value == report[label][heading], f"README {label} {heading}: {value} != the report's"
