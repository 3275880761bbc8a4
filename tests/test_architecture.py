"""The layering of docs/architecture.md holds: the import contract, no import
cycle, graphs load and edit without the runtime's heavy or optional imports,
and the facade's defaults are the specs' defaults."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import streamdag as sd
import streamdag.datapipes.iter as sd_iter
from streamdag.core.ops import BUILTIN

ROOT = Path(__file__).resolve().parents[1]
#: DataPipe.__iter__ -> DataLoader2: the one upward edge, imported in the method
LAZY_EDGES = {("streamdag.datapipes.datapipe", "streamdag.reading_service.dataloader2")}


def test_layers_contract_holds() -> None:
    """lint-imports checks the layers contract of pyproject.toml."""
    script = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(script)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_no_import_cycle() -> None:
    """No two modules import each other, directly or through others (package
    __init__ modules included), apart from the documented lazy edge."""
    graph = grimp.build_graph("streamdag", exclude_type_checking_imports=True)
    for importer, imported in LAZY_EDGES:
        graph.remove_import(importer=importer, imported=imported)
    cycles = [
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    ]
    assert not cycles, cycles[:5]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )


def test_a_dali_graph_loads_shows_edits_and_saves_without_dali(tmp_path: Path) -> None:
    """With DALI unimportable, the graph is plain data: loaded, shown, edited and
    saved, importing neither torch nor any optional backend; running it says
    what to install."""
    pipe = (
        sd.IterableWrapper([b"not a jpeg"])
        .batch(2)
        .decode_images(backend="dali", size=8, name="dec")
    )
    sd.save(pipe, tmp_path / "g.json")
    code = f"""
import sys
sys.modules["nvidia"] = None  # DALI is not installed
import streamdag as sd
from streamdag.cli import main
graph = sd.Graph.load({str(tmp_path / "g.json")!r})
graph.set_param("dec", "size", 16).save({str(tmp_path / "edited.json")!r})
main(["show", {str(tmp_path / "edited.json")!r}])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("torch", "nvidia", "pyarrow", "tokenizers", "ray", "numpy", "PIL"))
print("imported:", [m for m in heavy if sys.modules[m] is not None])
try:
    list(sd.load({str(tmp_path / "edited.json")!r}))
except Exception as exc:
    print("run:", type(exc).__name__, exc)
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "imported: []" in lines
    assert any("decode_images" in line and "size=16" in line for line in lines)
    assert lines[-1].startswith("run: DaliMissingError")
    assert "pip install 'streamdag[dali]'" in lines[-1]
    saved = json.loads((tmp_path / "edited.json").read_text())
    assert saved["nodes"][-1]["params"]["size"] == 16


def test_import_streamdag_imports_no_torch() -> None:
    result = _run("import sys, streamdag; print('torch' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


FACADE = {
    "iterable_wrapper": sd.IterableWrapper,
    "file_lister": sd.FileLister,
    "sample_multiplexer": sd.SampleMultiplexer,
    "sampler": sd_iter.Sampler,
}
#: built by other facade methods: fork/demux make branches, open_files(retry=...)
#: takes the retry params as a dict and leaves their defaults to the spec
NO_METHOD = {"branch", "open_files_retrying", "_worker_stream"}


@pytest.mark.parametrize(
    "spec", [s for s in BUILTIN if s.name not in NO_METHOD], ids=lambda s: s.name
)
def test_facade_defaults_are_the_spec_defaults(spec) -> None:
    """Every default a facade method's signature shows is its op spec's."""
    method = FACADE.get(spec.name) or getattr(sd.DataPipe, spec.name)
    shown = {
        k: p.default
        for k, p in inspect.signature(method).parameters.items()
        if p.default is not inspect.Parameter.empty and k in spec.params
    }
    assert shown == {k: spec.params[k].default for k in shown}
