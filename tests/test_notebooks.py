"""The notebooks run headless over a sample export and draw every figure they promise."""

from __future__ import annotations

from pathlib import Path

import nbformat
import polars as pl
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from batchalert.export import HIVE_SCHEMA
from scripts.make_sample_export import build_sample_export

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
# Seconds one cell may run; the sample export takes a few seconds in total.
CELL_TIMEOUT_SECONDS = 120
# Cells tagged "figure" must each display a PNG image.
FIGURE_TAG = "figure"


@pytest.fixture(scope="module")
def sample_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sample-export")
    build_sample_export(directory, count=3000)
    return directory


def execute(path: Path, export_dir: Path, monkeypatch: pytest.MonkeyPatch) -> NotebookNode:
    """Run a notebook in the `python3` kernel from its own directory, as Jupyter does."""
    monkeypatch.setenv("BATCHALERT_EXPORT", str(export_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook: NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    # The kernel's ZeroMQ sockets listen on the loopback address only.
    kernel = KernelManager(kernel_name="python3", ip="127.0.0.1")
    client = NotebookClient(notebook, km=kernel, timeout=CELL_TIMEOUT_SECONDS,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    client.execute()
    return notebook


def code_cells(notebook: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def has_png(cell: NotebookNode) -> bool:
    return any(output.output_type == "display_data" and "image/png" in output.get("data", {})
               for output in cell.outputs)


def test_notebooks_found() -> None:
    assert [path.name for path in NOTEBOOKS] == ["404-overview.ipynb",
                                                 "error-rates-duckdb.ipynb"]


def test_sample_export_reads_back(sample_export: Path) -> None:
    rows = pl.scan_parquet(sample_export, hive_partitioning=True,
                           hive_schema=HIVE_SCHEMA).collect()

    assert rows.height == 3000 + 3000 // 20
    assert set(rows["kind"]) == {"access", "other", "malformed"}
    assert rows.filter(pl.col("status") == 404).height > 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]

    for cell in code_cells(notebook):
        assert cell.outputs == [], cell.source
        assert cell.execution_count is None, cell.source


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_and_draws(path: Path, sample_export: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = execute(path, sample_export, monkeypatch)

    cells = code_cells(notebook)
    errors = [output for cell in cells for output in cell.outputs
              if output.output_type == "error"]
    # Warnings (deprecated Polars or pandas calls, for example) go to standard error.
    stderr = [output.text for cell in cells for output in cell.outputs
              if output.output_type == "stream" and output.name == "stderr"]
    figures = [cell for cell in cells if FIGURE_TAG in cell.metadata.get("tags", [])]
    assert errors == []
    assert stderr == []
    assert len(figures) >= 2
    for cell in figures:
        assert has_png(cell), cell.source
