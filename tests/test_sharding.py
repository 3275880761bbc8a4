"""One sharding point per path: a second sharding point on the path from a
source to the output would split the already split data again (each of n
workers keeping 1/n² of it), so it is an error naming both nodes, raised when
the pipeline is built, or when a loader takes a graph built another way (a
file, an edit). Sharding points on parallel branches that are joined later
each split their own input."""

from __future__ import annotations

import json
from functools import partial

import pytest

import streamdag as sd
from streamdag.testing import run_epoch
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.support.rs_functions import square

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaks")]

SERVICES = {
    "in process": None,
    "processes": partial(sd.MultiProcessingReadingService, 2),
    "threads": partial(sd.MultiThreadingReadingService, 2),
}


@sd.reader("test_sharded_items", inputs=1, shardable=True)
def sharded_items(ctx: sd.ReaderContext, item):
    """Yields this copy's share of the numbers 0..item-1."""
    yield from range(ctx.shard_index, item, ctx.num_shards)


def test_a_second_sharding_filter_on_one_path_fails_when_built_naming_both():
    files = sd.IterableWrapper(range(100)).sharding_filter(name="files").map(square)
    with pytest.raises(sd.ParamError) as caught:
        files.sharding_filter(name="samples")
    message = str(caught.value)
    assert "sharding twice" in message
    assert "sharding_filter node 'samples'" in message
    assert "sharding_filter node 'files'" in message


def test_a_sharding_filter_after_a_join_of_a_sharded_branch_fails():
    """Only one input is sharded, but the path through it would split twice."""
    left = sd.IterableWrapper(range(10)).sharding_filter(name="left")
    right = sd.IterableWrapper(range(10), name="right")
    with pytest.raises(sd.ParamError, match="'left'"):
        left.zip(right).sharding_filter()
    with pytest.raises(sd.ParamError, match="'left'"):
        right.concat(left).batch(2).sharding_filter()


def test_a_shardable_reader_after_a_sharding_filter_fails():
    urls = sd.IterableWrapper([4, 6]).sharding_filter(name="urls")
    with pytest.raises(sd.ParamError, match=r"test_sharded_items.*'urls'|'urls'.*test_sharded"):
        sharded_items(urls)


def test_inserting_a_second_sharding_filter_into_a_graph_fails():
    graph = sd.Graph(
        sd.IterableWrapper(range(8)).sharding_filter(name="first").map(square, name="sq")
    )
    with pytest.raises(sd.ParamError, match="'first'"):
        graph.insert_after("sq", "sharding_filter", name="again")


@pytest.mark.parametrize("join", ["zip", "concat", "mux"])
def test_sharding_filters_on_parallel_branches_split_each_input_once(join):
    """Both branches of a fork are sharded, then joined: every element once."""
    left, right = sd.IterableWrapper(range(12)).fork(2)
    dp = getattr(left.sharding_filter(), join)(right.map(square).sharding_filter())
    out = run_epoch(dp, reading_service=SERVICES["processes"])
    if join == "zip":
        assert sorted(out) == [(i, i * i) for i in range(12)]
    else:
        assert sorted(out) == sorted([*range(12), *(i * i for i in range(12))])


def _doubly_sharded_file(tmp_path):
    """A graph file with two sharding filters on one path, as an older
    version could save it or a hand edit could make it."""
    path = tmp_path / "twice.json"
    sd.save(sd.IterableWrapper(list(range(100))).sharding_filter(name="first").batch(3), path)
    doc = json.loads(path.read_text())
    doc["nodes"].append(
        {
            "id": "second-1",
            "op": "sharding_filter",
            "params": {},
            "inputs": [doc["output"]],
            "name": "second",
        }
    )
    doc["output"] = "second-1"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("service", list(SERVICES))
def test_a_doubly_sharded_graph_from_disk_fails_when_the_loader_is_built(tmp_path, service):
    dp = sd.load(_doubly_sharded_file(tmp_path))
    factory = SERVICES[service]
    with pytest.raises(sd.ParamError) as caught:
        sd.DataLoader2(dp, reading_service=factory() if factory else None)
    assert "'first'" in str(caught.value) and "'second'" in str(caught.value)


def test_iterating_a_doubly_sharded_graph_from_disk_fails(tmp_path):
    dp = sd.load(_doubly_sharded_file(tmp_path))
    with pytest.raises(sd.ParamError, match="sharding twice"):
        list(dp)


def test_a_doubly_sharded_graph_file_can_still_be_loaded_and_fixed(tmp_path):
    graph = sd.Graph.load(_doubly_sharded_file(tmp_path))
    fixed = graph.remove("second").to_datapipe()
    out = run_epoch(fixed, reading_service=SERVICES["processes"])
    assert sorted(x for batch in out for x in batch) == list(range(100))


def test_the_validate_command_reports_sharding_twice(tmp_path, capsys):
    from streamdag.cli import main

    assert main(["validate", str(_doubly_sharded_file(tmp_path))]) == 1
    error = capsys.readouterr().err
    assert "sharding twice" in error and "'first'" in error and "'second'" in error
