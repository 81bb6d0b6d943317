"""The notebooks in notebooks/: each runs top to bottom in a real Jupyter kernel at small sizes, and is
committed without outputs.

The kernel is ipykernel's own ``python3`` kernel started with this test's interpreter (``sys.executable``),
never a kernelspec found on disk: a ``python3`` kernelspec in ``~/.local/share/jupyter`` or ``$JUPYTER_PATH``
may name another Python, one without jaxnet. A ``KernelSpecManager`` with no kernel folders leaves jupyter_client
only ipykernel's built-in spec, whose command is ``[sys.executable, "-m", "ipykernel_launcher", ...]``; so
``pip install -e '.[test]'`` (which installs ipykernel) is all a fresh machine needs, and nothing is written
outside the temporary folders.

Sizes: each notebook has one cell tagged ``parameters``; the test inserts a cell right after it that sets
the small values of :data:`SMALL` (and checks the kernel's interpreter and cache folder). A failing cell raises
nbclient's ``CellExecutionError``, which names the cell and shows its traceback, and fails the test.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from jaxnet import data

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: Per notebook, the parameter values the test runs it with (every notebook must be listed).
SMALL: dict[str, dict[str, object]] = {
    "1_graphs_and_gradcheck.ipynb": {"GRADCHECK_DTYPES": ["float64"]},
    "2_two_layer.ipynb": {"EPOCHS": 1, "TRAIN_SIZE": 2000},
    # 1024 = 2 chunks of 8 unrolled batches of 64: one compiled training program.
    "3_cnn.ipynb": {"EPOCHS": 1, "TRAIN_SIZE": 1024, "NUM_SHOWN": 6},
    "4_pretrained.ipynb": {},
}

#: Figures each notebook shows (a figure that silently fails to render would go unnoticed otherwise).
FIGURES = {"1_graphs_and_gradcheck.ipynb": 0, "2_two_layer.ipynb": 2, "3_cnn.ipynb": 2, "4_pretrained.ipynb": 1}

NEEDS_FASHION_MNIST = {"2_two_layer.ipynb", "3_cnn.ipynb"}
CELL_TIMEOUT_S = 600


def _fashion_mnist_available() -> bool:
    folder = os.environ.get("JAXNET_FASHION_MNIST_DIR") or data.FASHION_MNIST_DEFAULT_DIR
    return any(Path(folder).glob("train-images-idx3-ubyte*"))


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def parameters_index(nb) -> int:
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"a notebook needs exactly one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def assigned_names(source: str) -> set[str]:
    return {target.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def kernel_manager() -> AsyncKernelManager:
    """ipykernel's python3 kernel on this interpreter (see the module docstring)."""
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


def run_notebook(nb, cwd: Path, env: dict[str, str]):
    """Executes ``nb`` in place in a fresh kernel started in ``cwd`` with ``env``; raises on a failing cell."""
    client = NotebookClient(nb, km=kernel_manager(), timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    return client.execute(env=env)


def _environment_check(cache_dir: str) -> str:
    return "\n".join([
        "import os as _os, sys as _sys",
        f"assert _sys.prefix == {sys.prefix!r}, _sys.prefix  # the test's own environment",
        f"assert _os.environ['JAXNET_CACHE_DIR'] == {cache_dir!r}",
    ])


@pytest.mark.parametrize("name", list(SMALL))
def test_notebook_runs(name, tmp_path):
    if name in NEEDS_FASHION_MNIST and not _fashion_mnist_available():
        pytest.skip("Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist, "
                    "or set JAXNET_FASHION_MNIST_DIR)")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = parameters_index(nb)
    small = SMALL[name]
    unknown = set(small) - assigned_names(nb.cells[index].source)
    assert not unknown, f"{name}'s parameters cell does not set {sorted(unknown)}"
    cache_dir = os.environ["JAXNET_CACHE_DIR"]  # conftest's private_cache: a temporary folder per test
    override = "\n".join(f"{key} = {value!r}" for key, value in small.items())
    check = _environment_check(cache_dir)
    injected = nbformat.v4.new_code_cell(f"# Injected by tests/test_notebooks.py\n{override}\n{check}")
    nb.cells.insert(index + 1, injected)

    run_notebook(nb, tmp_path, env={**os.environ, "JAXNET_CACHE_DIR": cache_dir})

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert sum("image/png" in out.get("data", {}) for out in outputs) == FIGURES[name]


def test_a_failing_cell_fails_the_run(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('cell 2 fails')"),
        nbformat.v4.new_code_cell("y = 2"),
    ])
    with pytest.raises(CellExecutionError, match="cell 2 fails"):
        run_notebook(nb, tmp_path, env=dict(os.environ))
    assert nb.cells[2].execution_count is None  # execution stopped at the failing cell


def test_every_notebook_is_run_by_the_tests():
    assert {path.name for path in notebook_paths()} == set(SMALL) == set(FIGURES)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.name)
def test_committed_notebook_is_clean(path):
    """No outputs, no execution counts, minimal metadata, jaxnet imported before jax, one parameters cell."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, f"extra notebook metadata: {sorted(nb.metadata)}"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for i, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, f"code cell {i} has outputs (strip them)"
        assert set(cell.metadata) <= {"tags"}, f"code cell {i} has metadata {sorted(cell.metadata)}"
    parameters_index(nb)
    imports = [line.split() for cell in code for line in cell.source.splitlines()
               if line.startswith(("import ", "from "))]
    assert imports and imports[0][:2] == ["import", "jaxnet"], "the first import must be `import jaxnet` (before jax)"
