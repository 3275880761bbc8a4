"""The execution plan: a shuffle after a decode runs before it, with the same
output, and the graph as written stays what is saved, shown and counted."""

from __future__ import annotations

from functools import partial

import pytest
import torch

import streamdag as sd
from streamdag.core.node import walk
from streamdag.core.plan import execution_plan
from streamdag.datapipes import RuntimeGraph
from streamdag.errors import NodeError, ParamError
from streamdag.testing import assert_resumes, run_epoch
from tests.support.readers import jpeg_bytes, write_tar

DECODED: list[str] = []


def to_pair(sample: dict) -> tuple:
    return torch.from_numpy(sample["jpg"]).permute(2, 0, 1), sample["cls"]


def counting_jpeg(data: bytes):
    """The built-in JPEG decode, recording each call."""
    from streamdag.decoders.image import decode_image

    DECODED.append("jpg")
    return decode_image(data)


def image_shards(tmp_path, shards: int = 3, per_shard: int = 20) -> list[str]:
    paths = []
    for s in range(shards):
        members = []
        for i in range(s * per_shard, (s + 1) * per_shard):
            members += [(f"{i:06d}.jpg", jpeg_bytes(16, 12, seed=i)), (f"{i:06d}.cls", b"%d" % i)]
        paths.append(str(write_tar(tmp_path / f"shard-{s}.tar", members)))
    return paths


def image_pipeline(shards: list[str], decode_late: bool = True, **decode: object) -> sd.DataPipe:
    return (
        sd.IterableWrapper(shards)
        .shuffle()
        .sharding_filter()
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .decode(name="dec", **decode)
        .map(to_pair, pure=True, name="pair")
        .shuffle(buffer_size=25, initial=5, decode_late=decode_late, name="shuf")
        .batch(4)
        .collate()
    )


AS_WRITTEN = ["webdataset", "dec", "pair", "shuf", "batch", "collate"]
DECODED_LATE = ["webdataset", "shuf", "dec", "pair", "batch", "collate"]


def planned_ops(dp: sd.DataPipe) -> list[str]:
    return [n.name or n.op for n in walk(execution_plan(dp.node))]


def plain(batch: tuple) -> tuple:
    """A collated batch as lists, comparable with ==."""
    images, labels = batch
    return images.tolist(), labels.tolist()


def as_lists(batches: list) -> list:
    return [plain(batch) for batch in batches]


SERVICES = {
    "in process": None,
    "2 threads": partial(sd.MultiThreadingReadingService, 2),
    "2 processes": partial(sd.MultiProcessingReadingService, 2),
}


@pytest.mark.parametrize("service", SERVICES.values(), ids=SERVICES.keys())
def test_same_batches_as_the_graph_as_written(tmp_path, service):
    """Decoding after the shuffle changes no element and no position."""
    shards = image_shards(tmp_path)
    late = as_lists(run_epoch(image_pipeline(shards), seed=3, reading_service=service))
    written = as_lists(
        run_epoch(image_pipeline(shards, decode_late=False), seed=3, reading_service=service)
    )
    assert late == written
    assert sorted(label for _, labels in late for label in labels) == list(range(60))


def test_the_shuffle_runs_before_decode_and_maps():
    dp = image_pipeline(["unused.tar"])
    assert planned_ops(dp)[-6:] == DECODED_LATE
    assert planned_ops(image_pipeline(["unused.tar"], decode_late=False))[-6:] == AS_WRITTEN


def test_a_shuffle_with_no_decode_before_it_stays():
    dp = sd.IterableWrapper(range(10)).map(abs, name="m").shuffle(name="s")
    assert planned_ops(dp) == ["iterable_wrapper", "m", "s"]


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_a_decode_that_drops_bad_samples_keeps_the_shuffle_after_it(policy):
    """Dropping samples after the shuffle would change which positions come out."""
    dp = image_pipeline(["unused.tar"], on_error=policy)
    assert planned_ops(dp)[-6:] == AS_WRITTEN


def test_a_decode_read_by_two_consumers_is_not_moved():
    decoded = sd.IterableWrapper([{"cls": b"1"}]).decode(name="dec")
    left, right = decoded.fork(2)
    dp = left.shuffle(name="s").zip(right)
    ops = planned_ops(dp)
    assert ops.index("dec") < ops.index("s")


def test_only_one_to_one_nodes_are_crossed():
    """The shuffle stops above the farthest decode; a filter ends the chain."""
    dp = (
        sd.IterableWrapper([{"cls": b"1"}])
        .decode(name="d1")
        .filter(bool, name="f")
        .decode(name="d2")
        .map(dict, pure=True, name="m")
        .shuffle(name="s")
    )
    assert planned_ops(dp) == ["iterable_wrapper", "d1", "f", "s", "d2", "m"]


def test_a_map_not_declared_pure_keeps_the_shuffle_after_it():
    """A plain user function may draw from a global RNG or have side effects:
    running it in shuffled order could change what it returns."""
    decoded = sd.IterableWrapper([{"cls": b"1"}]).decode(name="d")
    dp = decoded.map(dict, name="m").shuffle(name="s")
    assert planned_ops(dp) == ["iterable_wrapper", "d", "m", "s"]
    dp = decoded.map(dict, pure=True, name="m").shuffle(name="s")
    assert planned_ops(dp) == ["iterable_wrapper", "s", "d", "m"]


def test_a_disabled_shuffle_stays():
    dp = sd.IterableWrapper([{"cls": b"1"}]).decode(name="d").shuffle(name="s").set_shuffle(False)
    assert planned_ops(dp) == ["iterable_wrapper", "d", "s"]


def test_taking_the_first_sample_decodes_one_not_a_buffer(tmp_path):
    """The buffer holds encoded samples: decodes follow what is taken."""
    shards = image_shards(tmp_path, shards=1)
    dp = (
        sd.IterableWrapper(shards)
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .decode(by_ext={"jpg": counting_jpeg})
        .shuffle(buffer_size=25, initial=10)
    )
    DECODED.clear()
    it = iter(dp)
    next(it)
    assert len(DECODED) == 1
    assert len(list(it)) == 19
    assert len(DECODED) == 20


def test_resume_is_exact(tmp_path):
    assert_resumes(image_pipeline(image_shards(tmp_path)).map(plain), stops=[0, 1, 4, 9, 15])


def test_resume_is_exact_in_worker_processes(tmp_path):
    assert_resumes(
        image_pipeline(image_shards(tmp_path)).map(plain),
        stops=[2, 7],
        reading_service=partial(sd.MultiProcessingReadingService, 2),
    )


def test_a_corrupt_image_names_the_decode_node_sample_and_archive(tmp_path):
    members = [
        ("000000.jpg", jpeg_bytes(16, 12)),
        ("000000.cls", b"0"),
        ("000001.jpg", b"\xff\xd8 not a jpeg"),
        ("000001.cls", b"1"),
    ]
    shard = str(write_tar(tmp_path / "bad.tar", members))
    with pytest.raises(
        NodeError,
        match=r"decode node 'dec' failed on sample '000001' of "
        r"'.*bad\.tar', field 'jpg'",
    ):
        run_epoch(image_pipeline([shard]))


def test_statistics_name_the_nodes_as_written(tmp_path):
    dp = image_pipeline(image_shards(tmp_path))
    with sd.DataLoader2(dp, seed=0, stats=True) as loader:
        assert len(list(loader)) == 15
        stats = loader.stats()
    assert [n.name for n in stats.nodes if n.name] == ["dec", "pair", "shuf"]
    for name in ("dec", "pair", "shuf"):
        assert (stats.node(name).elements_in, stats.node(name).elements_out) == (60, 60)


def test_graph_as_written_is_saved_and_decode_late_can_be_edited(tmp_path):
    dp = image_pipeline(image_shards(tmp_path))
    path = tmp_path / "g.json"
    sd.save(dp, path)
    g = sd.Graph.load(path, trusted_modules=["tests"])
    assert g.find(name="shuf").params["decode_late"] is True
    ops = [n.name or n.op for n in walk(g.output)]
    assert ops.index("dec") < ops.index("shuf")
    edited = g.set_param("shuf", "decode_late", False).to_datapipe()
    assert planned_ops(edited)[-6:] == AS_WRITTEN


def test_decode_late_must_be_a_bool():
    with pytest.raises(ParamError, match="shuffle: decode_late"):
        sd.IterableWrapper([]).shuffle(decode_late="yes")


def test_seeds_follow_the_graph_as_written():
    """Each node keeps the position it has in the graph as written."""
    dp = image_pipeline(["unused.tar"])
    graph = RuntimeGraph(dp.node)
    assert graph.nodes[dp.node.inputs[0].inputs[0].id].index == len(walk(dp.node)) - 3
