"""Save a pipeline, edit it as a graph, load it back and run it.

    python examples/edit_graph.py [OUT_DIR]

The same edits from the shell:

    streamdag show OUT_DIR/pipeline.json
    streamdag set OUT_DIR/pipeline.json batch.batch_size=8 shuf.buffer_size=64
    streamdag run OUT_DIR/pipeline.json --limit 3 --seed 0
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import streamdag as sd


# A function defined in the script being run has no import path another
# process could use, so it is saved by a registered name instead.
@sd.register_function("examples.square")
def square(x: int) -> int:
    return x * x


def main(out_dir: Path) -> None:
    pipe = (
        sd.IterableWrapper(range(100), name="src")
        .shuffle(buffer_size=16, name="shuf")
        .map(square, name="square")
        .batch(4, name="batch")
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "pipeline.json"
    sd.save(pipe, path)
    print(f"saved {path}:\n{path.read_text()}")

    graph = sd.Graph.load(path)
    edited = (
        graph.set_param("batch", "batch_size", 8)
        .insert_after("square", "filter", name="even", fn=is_even, input_col=None)
        .remove("shuf")
    )
    for node in edited.nodes:
        print(
            f"{node.name}: {node.op}({', '.join(node.params)}) <- {[i.name for i in node.inputs]}"
        )
    edited.save(out_dir / "edited.sdag")

    loaded = sd.load(out_dir / "edited.sdag")
    with sd.DataLoader2(loaded, seed=0) as loader:
        print("first batches:", [batch for batch, _ in zip(loader, range(2), strict=False)])


@sd.register_function("examples.is_even")
def is_even(x: int) -> bool:
    return x % 2 == 0


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
