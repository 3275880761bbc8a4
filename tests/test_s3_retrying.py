"""RetryingReader against the real moto server through the fault proxy.

Every test asserts the exact bytes (or the exact sample set) and, through the
proxy's request log, how many requests a fault cost: that pins down both "no
byte lost or duplicated" and "retry budgets do not multiply"."""

from __future__ import annotations

import io
import random
import tarfile
import time
from typing import Any

import pytest

import streamdag.readers  # noqa: F401 - registers the reader ops
from streamdag.datapipes.file_lister import FileLister
from streamdag.readers.retry import RetryPolicy, RetryStats, make_fs
from streamdag.readers.retrying import RetryingReader, open_retrying
from streamdag.readers.transient import ObjectChangedError, RetriesExhaustedError, is_transient
from tests.support.faultproxy import FaultProxy
from tests.support.s3 import storage_options

pytestmark = [pytest.mark.s3, pytest.mark.timeout(30)]

DATA = random.Random(6).randbytes(300_001)  # odd size: the last chunk is short
CHUNK = 64 * 1024
FAST = RetryPolicy(max_retries=4, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture
def obj(s3_fs: Any, s3_bucket: str) -> str:
    path = f"{s3_bucket}/data/obj.bin"
    s3_fs.pipe_file(path, DATA)
    return path


def proxied_fs(proxy: FaultProxy, **config: Any) -> Any:
    opts = storage_options(proxy.endpoint, skip_instance_cache=True)
    if config:
        opts["config_kwargs"] = config
    fs, _ = make_fs("s3://x", opts)
    return fs


def reader(proxy: FaultProxy, path: str, *, read_ahead: int = 2, **config: Any) -> RetryingReader:
    return RetryingReader(
        proxied_fs(proxy, **config),
        path,
        chunk_size=CHUNK,
        read_ahead=read_ahead,
        policy=FAST,
        seed=0,
    )


def gets(proxy: FaultProxy) -> list[str | None]:
    return [r.range for r in proxy.requests if r.method == "GET"]


def read_small(stream: Any, n: int = 7_777) -> bytes:
    out = bytearray()
    while chunk := stream.read(n):
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("read_ahead", [0, 1, 3])
def test_reads_exact_bytes_in_ranged_chunks(
    s3_proxy: FaultProxy, obj: str, read_ahead: int
) -> None:
    with reader(s3_proxy, obj, read_ahead=read_ahead) as r:
        assert read_small(io.BufferedReader(r)) == DATA
        assert r.retries == 0
    ranges = sorted(gets(s3_proxy), key=lambda h: int(h.split("=")[1].split("-")[0]))
    n = -(-len(DATA) // CHUNK)
    assert ranges == [f"bytes={i * CHUNK}-{min((i + 1) * CHUNK, len(DATA)) - 1}" for i in range(n)]


def test_ranges_grow_from_first_chunk_to_chunk_size(s3_proxy: FaultProxy, obj: str) -> None:
    """No HEAD; the first range is small and the next ones grow x4 up to chunk_size."""
    r = RetryingReader(
        proxied_fs(s3_proxy),
        obj,
        chunk_size=256 * 1024,
        first_chunk=16 * 1024,
        read_ahead=1,
        policy=FAST,
    )
    assert read_small(r) == DATA
    assert [(rec.method, rec.range) for rec in s3_proxy.requests] == [
        ("GET", "bytes=0-16383"),
        ("GET", "bytes=16384-81919"),
        ("GET", "bytes=81920-300000"),
    ]  # clipped at the size
    assert r.size == len(DATA)


def test_cut_mid_body_resumes_at_the_byte_reached(s3_proxy: FaultProxy, obj: str) -> None:
    """Two cuts inside the first range: each retry asks only for the bytes not yet received."""
    r = reader(s3_proxy, obj, read_ahead=1)
    s3_proxy.cut_next_response(after_bytes=10_000, count=2, method="GET")
    assert read_small(r) == DATA
    n = -(-len(DATA) // CHUNK)
    assert gets(s3_proxy)[:3] == [f"bytes={start}-{CHUNK - 1}" for start in (0, 10_000, 20_000)]
    assert len(gets(s3_proxy)) == n + 2
    assert r.retries == 2
    assert r.stats.as_dict() == {
        "retries": 2,
        "requests": n + 2,
        "bytes": len(DATA),
        "bytes_fetched": len(DATA),
    }
    # on the wire too, no body byte was sent twice
    assert sum(rec.body_bytes for rec in s3_proxy.requests) == len(DATA)
    assert s3_proxy.pending_faults == 0


def test_cut_in_a_later_chunk_resumes_at_its_offset(s3_proxy: FaultProxy, obj: str) -> None:
    r = reader(s3_proxy, obj, read_ahead=0)
    head = r.read(CHUNK)
    s3_proxy.cut_next_response(after_bytes=1, method="GET")
    rest = read_small(r)
    assert head + rest == DATA
    assert r.retries == 1
    assert gets(s3_proxy)[1:3] == [
        f"bytes={CHUNK}-{2 * CHUNK - 1}",
        f"bytes={CHUNK + 1}-{2 * CHUNK - 1}",
    ]
    assert r.stats.bytes_fetched == len(DATA)


def test_503_burst_is_retried_by_us_only(s3_proxy: FaultProxy, obj: str) -> None:
    r = reader(s3_proxy, obj)
    s3_proxy.fail_next(3, status=503, method="GET")
    assert read_small(r) == DATA
    assert r.retries == 3
    # 3 failed GETs + one per chunk: neither botocore nor s3fs retried underneath
    assert len(gets(s3_proxy)) == -(-len(DATA) // CHUNK) + 3


def test_500_is_retried(s3_proxy: FaultProxy, obj: str) -> None:
    r = reader(s3_proxy, obj)
    s3_proxy.fail_next(1, status=500, method="GET")
    assert read_small(r) == DATA
    assert r.retries == 1


def test_stall_mid_body_times_out_and_is_retried(s3_proxy: FaultProxy, obj: str) -> None:
    r = reader(s3_proxy, obj, read_ahead=1, read_timeout=0.5)
    s3_proxy.stall_next(2.0, after_bytes=1000, method="GET")
    assert read_small(r) == DATA
    assert r.retries == 1


def test_persistent_503_gives_up_with_the_url(s3_proxy: FaultProxy, obj: str) -> None:
    r = reader(s3_proxy, obj, read_ahead=0)
    s3_proxy.fail_next(50, status=503, method="GET")
    with pytest.raises(RetriesExhaustedError, match=f"s3://{obj}: giving up after 5 attempts"):
        r.read(10)
    assert len(gets(s3_proxy)) == FAST.max_retries + 1
    s3_proxy.clear_faults()


@pytest.mark.parametrize("what", ["key", "bucket"])
def test_not_found_fails_fast_with_the_url(s3_proxy: FaultProxy, s3_bucket: str, what: str) -> None:
    path = f"{s3_bucket}/nope.bin" if what == "key" else "no-such-bucket-6d1e/x.bin"
    r = RetryingReader(proxied_fs(s3_proxy), path, policy=RetryPolicy(backoff_base=60.0))
    with pytest.raises(FileNotFoundError, match=path):
        r.read(1)
    # one GET and no HEAD: no retry at any layer (a retry would sleep up to a minute)
    assert [rec.method for rec in s3_proxy.requests] == ["GET"] and r.retries == 0


@pytest.mark.parametrize("status", [403, 400])
def test_client_errors_fail_fast_with_the_url(s3_proxy: FaultProxy, obj: str, status: int) -> None:
    r = reader(s3_proxy, obj, read_ahead=0)
    s3_proxy.fail_next(1, status=status, method="GET")
    with pytest.raises(OSError, match=f"s3://{obj}") as info:
        r.read(10)
    assert not isinstance(info.value, RetriesExhaustedError)
    assert r.retries == 0 and len(gets(s3_proxy)) == 1


@pytest.mark.parametrize(
    ("new_size", "versioned"), [(len(DATA), False), (len(DATA) + 5, False), (len(DATA), True)]
)
def test_overwritten_between_ranges_fails_naming_the_url(
    s3_proxy: FaultProxy, obj: str, s3_fs: Any, new_size: int, versioned: bool
) -> None:
    """A rewrite between two ranged reads is refused (If-Match -> 412), never
    spliced, on a versioned bucket too (If-Match is against the latest version)."""
    if versioned:
        s3_fs.call_s3(
            "put_bucket_versioning",
            Bucket=obj.split("/")[0],
            VersioningConfiguration={"Status": "Enabled"},
        )
        s3_fs.pipe_file(obj, DATA)  # a version of its own
    r = reader(s3_proxy, obj, read_ahead=0)
    head = r.read(CHUNK)
    s3_fs.pipe_file(obj, bytes(new_size))
    with pytest.raises(
        ObjectChangedError,
        match=f"s3://{obj}: the object was replaced "
        "while it was being read .* a read from byte 65536 was refused: 412",
    ):
        r.read(CHUNK)
    assert head == DATA[:CHUNK] and r.tell() == CHUNK
    assert [(rec.range, rec.status) for rec in s3_proxy.requests] == [
        (f"bytes=0-{CHUNK - 1}", 206),
        (f"bytes={CHUNK}-{2 * CHUNK - 1}", 412),
    ]
    assert r.retries == 0


def test_overwritten_while_read_ahead_passes_on_only_the_old_version(
    s3_proxy: FaultProxy, obj: str, s3_fs: Any
) -> None:
    """With ranges in flight, whatever had arrived is the old version; the rest fails."""
    r = reader(s3_proxy, obj, read_ahead=2)
    got = bytearray(r.read(1000))
    s3_fs.pipe_file(obj, bytes(len(DATA)))
    with pytest.raises(ObjectChangedError, match=f"s3://{obj}"):
        while chunk := r.read(CHUNK):
            got += chunk
    assert len(got) < len(DATA) and bytes(got) == DATA[: len(got)]
    assert [rec.status for rec in s3_proxy.requests].count(412) >= 1


def test_lister_and_reader_share_one_filesystem(s3_env: str, s3_bucket: str, s3_fs: Any) -> None:
    """FileLister lists through make_fs (retries off), so with equal options
    a worker's listing and reading use one S3 client (one CA-bundle load,
    one connection pool)."""
    s3_fs.pipe_file(f"{s3_bucket}/a.bin", DATA)
    opts = storage_options(s3_env)
    assert list(FileLister(f"s3://{s3_bucket}/", storage_options=opts)) == [
        f"s3://{s3_bucket}/a.bin"
    ]
    lister_fs, _ = make_fs(f"s3://{s3_bucket}/", opts)
    fs, path = make_fs(f"s3://{s3_bucket}/a.bin", opts)
    assert fs is lister_fs and fs.retries == 1
    assert RetryingReader(fs, path, chunk_size=CHUNK).read() == DATA


def _lister_node(proxy: FaultProxy, bucket: str, root: str = "shards/") -> tuple[Any, Any]:
    from streamdag.runtime.graph import RuntimeGraph

    dp = FileLister(
        f"s3://{bucket}/{root}", "*.tar", storage_options=storage_options(proxy.endpoint)
    )
    graph = RuntimeGraph(dp.node)
    return graph, next(n for n in graph.nodes.values() if n.spec.op == "file_lister")


def _listings(proxy: FaultProxy) -> list[int | None]:
    return [r.status for r in proxy.requests if "list-type" in r.target]


@pytest.mark.parametrize("root", ["shards/", "shards/shard-*.tar"])
def test_listing_retries_transient_failures(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]], root: str
) -> None:
    """A 503 burst on ListObjectsV2 (a folder or a glob) is retried by
    streamdag's policy alone (each failure is one of our retries, none hidden
    in botocore), counted in the lister's stats, and the listing is complete."""
    graph, node = _lister_node(s3_proxy, s3_bucket, root)
    s3_proxy.fail_next(3, status=503, path_contains="list-type")
    graph.start_epoch(0, 0)
    assert list(graph.iterate()) == [f"s3://{s3_bucket}/shards/shard-{i:04d}.tar" for i in range(3)]
    statuses = _listings(s3_proxy)  # a glob lists more than once
    assert statuses[:3] == [503, 503, 503] and set(statuses[3:]) == {200}
    assert node.stats()["retries"] == 3


def test_listing_of_several_pages_survives_a_503_on_a_later_page(
    s3_proxy: FaultProxy, s3_fs: Any, s3_bucket: str, s3_env: str
) -> None:
    """A folder of 1,050 objects takes two ListObjectsV2 pages (1,000 keys
    each at most). A 503 on the second page restarts the listing: every file
    once, in order, none lost with the failed page, none doubled by the retry."""
    names = [f"shard-{i:04d}.tar" for i in range(1050)]
    s3_fs.pipe({f"{s3_bucket}/shards/{n}": b"x" for n in names})
    s3_fs.invalidate_cache()
    graph, node = _lister_node(s3_proxy, s3_bucket)
    s3_proxy.fail_next(1, status=503, path_contains="continuation-token")
    graph.start_epoch(0, 0)
    assert list(graph.iterate()) == [f"s3://{s3_bucket}/shards/{n}" for n in names]
    assert _listings(s3_proxy) == [200, 503, 200, 200]
    assert node.stats()["retries"] == 1 and s3_proxy.pending_faults == 0


def test_listing_gives_up_after_max_retries(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str
) -> None:
    """A 503 that persists costs 1 + 5 listings (RetryPolicy's default), then
    a NodeError naming the lister, the root and the attempts."""
    from streamdag.errors import NodeError

    graph, node = _lister_node(s3_proxy, s3_bucket)
    s3_proxy.fail_next(6, status=503, path_contains="list-type")
    graph.start_epoch(0, 0)
    with pytest.raises(NodeError, match="cannot list .*giving up after 6 attempts"):
        list(graph.iterate())
    assert _listings(s3_proxy) == [503] * 6
    assert node.stats()["retries"] == 5 and s3_proxy.pending_faults == 0


@pytest.mark.parametrize("status", [403, 404])
def test_listing_fails_at_once_on_a_permanent_error(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, status: int
) -> None:
    """A denied or missing listing raises, naming the lister and the root,
    after one request: never an empty listing (fsspec's walk would omit it)."""
    from streamdag.errors import NodeError

    graph, node = _lister_node(s3_proxy, s3_bucket)
    s3_proxy.fail_next(1, status=status, path_contains="list-type")
    graph.start_epoch(0, 0)
    with pytest.raises(NodeError, match=f"file_lister.*cannot list 's3://{s3_bucket}/shards/'"):
        list(graph.iterate())
    assert _listings(s3_proxy) == [status]
    assert node.stats()["retries"] == 0


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_empty_object(s3_proxy: FaultProxy, s3_fs: Any, s3_bucket: str, read_ahead: int) -> None:
    """An empty object has no byte 0 (416 to a ranged GET): size 0, nothing to read."""
    s3_fs.pipe_file(f"{s3_bucket}/empty", b"")
    r = reader(s3_proxy, f"{s3_bucket}/empty", read_ahead=read_ahead)
    assert r.read() == b"" and r.size == 0 and r.retries == 0


def test_classification() -> None:
    from botocore.exceptions import ClientError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": code, "Message": code},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "GetObject",
        )

    assert not is_transient(PermissionError(13, "Forbidden"))
    assert not is_transient(FileNotFoundError(2, "NoSuchKey"))
    assert not is_transient(client_error("AccessDenied", 403))
    assert not is_transient(client_error("NoSuchBucket", 404))
    assert is_transient(client_error("SlowDown", 503))
    assert is_transient(client_error("RequestTimeout", 400))
    assert is_transient(client_error("Whatever", 502))
    wrapped = OSError(16, "Please reduce your request rate.")
    wrapped.__cause__ = client_error("SlowDown", 503)
    assert is_transient(wrapped)
    assert is_transient(ConnectionResetError(104, "reset"))
    assert is_transient(TimeoutError())
    import aiohttp

    assert is_transient(aiohttp.ClientPayloadError("Response payload is not completed"))


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_seek_then_read(s3_proxy: FaultProxy, obj: str, read_ahead: int) -> None:
    """Seeks before the first read (the size not known yet), back and forth."""
    with reader(s3_proxy, obj, read_ahead=read_ahead) as r:
        for pos in (250_000, 5, CHUNK - 3, len(DATA) - 2, 0, 131_072):
            r.seek(pos)
            assert read_small(r, 999)[:5000] == DATA[pos : pos + 5000]
        assert r.seek(0, io.SEEK_END) == len(DATA)
        assert r.read(10) == b""


def test_open_retrying_text_and_local(
    tmp_path: Any, s3_env: str, s3_bucket: str, s3_fs: Any
) -> None:
    s3_fs.pipe_file(f"{s3_bucket}/t.txt", b"a\nb\n")
    opts = storage_options(s3_env)
    with open_retrying(f"s3://{s3_bucket}/t.txt", "r", "utf-8", opts) as f:
        assert f.read() == "a\nb\n"
    local = tmp_path / "x.bin"
    local.write_bytes(b"xyz")
    with open_retrying(str(local)) as f:
        assert f.read() == b"xyz"


# -- end to end: FileLister -> open_files_retrying -> load_from_tar -> webdataset --


def _shard(index: int, per_shard: int) -> tuple[bytes, set[tuple[str, bytes]]]:
    buf = io.BytesIO()
    expected = set()
    rng = random.Random(index)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(per_shard):
            key = f"s{index:02d}_{i:04d}"
            payload = rng.randbytes(rng.randrange(500, 9000))
            for ext, data in (("bin", payload), ("cls", str(i % 10).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            expected.add((key, payload))
    return buf.getvalue(), expected


def _members_end(data: bytes) -> int:
    last = tarfile.open(fileobj=io.BytesIO(data)).getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


@pytest.fixture
def shards(s3_fs: Any, s3_bucket: str) -> set[tuple[str, bytes]]:
    expected: set[tuple[str, bytes]] = set()
    for index in range(3):
        data, samples = _shard(index, 60)
        s3_fs.pipe_file(f"{s3_bucket}/shards/shard-{index:04d}.tar", data)
        expected |= samples
    s3_fs.invalidate_cache()
    return expected


def _pipeline(proxy: FaultProxy, bucket: str, **opts: Any) -> Any:
    lister = FileLister(
        f"s3://{bucket}/shards/", "*.tar", storage_options=storage_options(proxy.endpoint)
    )
    opts = {"chunk_size": 128 * 1024, "read_ahead": 2, **opts}
    dp = lister.open_files(mode="b", retry={"backoff_base": 0.01, "backoff_max": 0.05, **opts})
    return dp._then("load_from_tar", {}, name=None)._then(
        "webdataset", {"keys": "webdataset"}, name=None
    )


def _samples(dp: Any) -> list[tuple[str, bytes]]:
    return [(s["__key__"], s["bin"]) for s in dp]


def test_webdataset_exact_samples_through_faults(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]]
) -> None:
    dp = _pipeline(s3_proxy, s3_bucket)
    s3_proxy.cut_next_response(after_bytes=5_000, count=2, path_contains="shard-0001")
    s3_proxy.fail_next(3, status=503, method="GET", path_contains="shard-0002")
    s3_proxy.stall_next(0.3, method="GET", path_contains="shard-0000")  # < read_timeout
    got = _samples(dp)
    assert len(got) == len(shards) == 180  # no sample lost or duplicated
    assert set(got) == shards
    assert s3_proxy.pending_faults == 0
    failed = [r for r in s3_proxy.requests if r.fault in ("cut", "fail")]
    assert len(failed) == 5


def test_webdataset_shard_rewritten_mid_read_fails_naming_it(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]], s3_fs: Any
) -> None:
    """The pipeline stops with the shard's URL; every sample before is the old version's."""
    from streamdag import NodeError

    dp = _pipeline(s3_proxy, s3_bucket, chunk_size=16 * 1024, first_chunk=16 * 1024)
    url = f"s3://{s3_bucket}/shards/shard-0000.tar"
    got = []
    with pytest.raises(NodeError, match=f"{url}: the object was replaced") as info:
        for sample in dp:
            got.append((sample["__key__"], sample["bin"]))
            if len(got) == 1:
                s3_fs.pipe_file(url, _shard(7, 60)[0])
    assert isinstance(info.value.__cause__, ObjectChangedError)
    assert got and set(got) <= shards


def test_webdataset_missing_shard_names_it(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]], s3_fs: Any
) -> None:
    from streamdag import IterableWrapper, NodeError

    urls = [f"s3://{s3_bucket}/shards/shard-0000.tar", f"s3://{s3_bucket}/shards/gone.tar"]
    dp = IterableWrapper(urls).open_files(
        mode="b", storage_options=storage_options(s3_proxy.endpoint), retry=True
    )
    dp = dp._then("load_from_tar", {})
    with pytest.raises(NodeError, match="gone.tar") as info:
        list(dp)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_node_reports_retries(s3_proxy: FaultProxy, obj: str) -> None:
    stats = RetryStats()
    opts = storage_options(s3_proxy.endpoint)
    s3_proxy.fail_next(2, status=503, method="GET")
    with open_retrying(
        f"s3://{obj}", storage_options=opts, chunk_size=CHUNK, policy=FAST, stats=stats
    ) as f:
        assert f.read() == DATA
        assert f.retries == 2
    assert stats.as_dict() == {
        "retries": 2,
        "requests": 2 + -(-len(DATA) // CHUNK),
        "bytes": len(DATA),
        "bytes_fetched": len(DATA),
    }


def test_node_stats_count_every_epoch(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]], s3_fs: Any
) -> None:
    """stats() of the open_files node: the retries, requests and bytes of
    every epoch (statistics, not resume state), a cut resumed mid-range."""
    from streamdag.runtime.graph import RuntimeGraph

    dp = _pipeline(s3_proxy, s3_bucket)
    graph = RuntimeGraph(dp.node)
    node = next(n for n in graph.nodes.values() if n.spec.op == "open_files_retrying")
    sizes = [s3_fs.size(f"{s3_bucket}/shards/shard-{i:04d}.tar") for i in range(3)]
    ranges = sum(-(-size // (128 * 1024)) for size in sizes)
    # the parser reads up to the first end-of-archive block, not the padding after it
    parsed = sum(_members_end(_shard(i, 60)[0]) + 512 for i in range(3))
    s3_proxy.cut_next_response(after_bytes=5_000, path_contains="shard-0001")
    for epoch in (0, 1):
        graph.start_epoch(0, epoch)
        assert sorted(_samples(graph.iterate())) == sorted(shards)
        graph.close()
    assert node.stats() == {
        "skipped": 0,
        "retries": 1,
        "requests": 2 * ranges + 1,
        "bytes": 2 * parsed,
        "bytes_fetched": 2 * sum(sizes),
    }
    cut = [r for r in s3_proxy.requests if r.fault == "cut"]
    retry = s3_proxy.requests[s3_proxy.requests.index(cut[0]) + 1 :]
    assert cut[0].range == "bytes=0-131071" and cut[0].body_bytes == 5_000
    assert any(r.range == "bytes=5000-131071" and "shard-0001" in r.target for r in retry)


@pytest.mark.parametrize("shards_ahead", [0, 1, 2])
def test_resume_mid_shard_exact(
    s3_proxy: FaultProxy,
    s3_bucket: str,
    s3_env: str,
    shards: set[tuple[str, bytes]],
    shards_ahead: int,
) -> None:
    from streamdag import DataLoader2

    dp = _pipeline(s3_proxy, s3_bucket, shards_ahead=shards_ahead)
    s3_proxy.cut_next_response(after_bytes=3_000, path_contains="shard-0000")
    loader = DataLoader2(dp, seed=0)
    it = iter(loader)
    first = [(s["__key__"], s["bin"]) for _, s in zip(range(70), it, strict=False)]
    state = loader.state_dict()
    loader.shutdown()
    s3_proxy.fail_next(2, status=503, method="GET", path_contains="shard-0001")
    again = DataLoader2(dp, seed=0)
    again.load_state_dict(state)
    rest = [(s["__key__"], s["bin"]) for s in again]
    again.shutdown()
    assert len(first) == 70 and len(first) + len(rest) == len(shards)
    assert set(first) | set(rest) == shards


def test_two_worker_processes_exact(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]]
) -> None:
    from streamdag import DataLoader2
    from streamdag.reading_service.multiprocessing import MultiProcessingReadingService

    lister = FileLister(
        f"s3://{s3_bucket}/shards/", "*.tar", storage_options=storage_options(s3_proxy.endpoint)
    ).sharding_filter()
    dp = lister.open_files(
        mode="b",
        storage_options=storage_options(s3_proxy.endpoint),
        retry={"chunk_size": 32 * 1024, "backoff_base": 0.01, "backoff_max": 0.05},
    )
    dp = dp._then("load_from_tar", {})._then("webdataset", {"keys": "webdataset"})
    s3_proxy.cut_next_response(after_bytes=2_000, count=2, path_contains="shard-0001")
    s3_proxy.fail_next(2, status=503, method="GET", path_contains="shard-0000")
    loader = DataLoader2(dp, MultiProcessingReadingService(num_workers=2), seed=0)
    try:
        got = [(s["__key__"], s["bin"]) for s in loader]
    finally:
        loader.shutdown()
    assert len(got) == len(shards) and set(got) == shards
    assert s3_proxy.pending_faults == 0


def _requested(proxy: FaultProxy, name: str, within: float) -> bool:
    """Whether a GET for ``name`` reaches the server within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if any(r.method == "GET" and name in r.target for r in proxy.requests):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.mark.parametrize("shards_ahead", [0, 1])
def test_next_shard_downloads_while_the_current_is_parsed(
    s3_proxy: FaultProxy,
    s3_bucket: str,
    s3_env: str,
    shards: set[tuple[str, bytes]],
    shards_ahead: int,
) -> None:
    """With shards_ahead, shard i+1 downloads while shard i is parsed; the
    epoch's second shard only once the parser reached the first one's last
    range (its first samples make the first batch). Without, a shard is
    requested when the parser needs it."""
    dp = _pipeline(s3_proxy, s3_bucket, shards_ahead=shards_ahead)
    it = iter(dp)
    got = [next(it)]
    assert got[0]["__key__"] == "s00_0000"
    assert not _requested(s3_proxy, "shard-0001", 0.3)  # the parser is in the first range
    while not got[-1]["__key__"].startswith("s01"):
        got.append(next(it))
        if got[-1]["__key__"] == "s00_0058":  # the parser is at the last sample
            assert _requested(s3_proxy, "shard-0001", 1.0) == bool(shards_ahead)
    assert _requested(s3_proxy, "shard-0002", 1.0 if shards_ahead else 0.3) == bool(shards_ahead)
    got += list(it)
    assert {(s["__key__"], s["bin"]) for s in got} == shards and len(got) == len(shards)


@pytest.mark.parametrize("shards_ahead", [0, 1])
def test_small_first_range_only_where_parsing_waits(
    s3_proxy: FaultProxy,
    s3_bucket: str,
    s3_env: str,
    shards: set[tuple[str, bytes]],
    shards_ahead: int,
) -> None:
    """The epoch's first file (every file without shards_ahead) starts with
    first_chunk bytes; a file opened ahead starts with a whole chunk."""
    dp = _pipeline(s3_proxy, s3_bucket, shards_ahead=shards_ahead, first_chunk=16 * 1024)
    assert set(_samples(dp)) == shards
    first = {}
    for rec in s3_proxy.requests:
        name = rec.target.split("?")[0].rsplit("/", 1)[-1]
        if rec.method == "GET" and name.startswith("shard-"):
            first.setdefault(name, rec.range)
    ahead = "bytes=0-16383" if shards_ahead == 0 else "bytes=0-131071"
    assert first == {
        "shard-0000.tar": "bytes=0-16383",
        "shard-0001.tar": ahead,
        "shard-0002.tar": ahead,
    }


def test_a_file_opened_ahead_downloads_after_the_one_before_it(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]]
) -> None:
    """Files opened ahead wait for the previous file's last byte: the ranges
    the parser needs first never share the link with the next shard's."""
    dp = _pipeline(s3_proxy, s3_bucket, shards_ahead=2, first_chunk=16 * 1024)
    assert set(_samples(dp)) == shards
    order = [
        r.target.split("?")[0].rsplit("/", 1)[-1]
        for r in s3_proxy.requests
        if r.method == "GET" and "shard-" in r.target
    ]
    assert order.count("shard-0000.tar") > 2  # several ranges, all before the next file's
    assert order == sorted(order)


def test_a_reader_opened_unstarted_requests_nothing_until_started(
    s3_proxy: FaultProxy, obj: str
) -> None:
    fs = proxied_fs(s3_proxy)
    later = RetryingReader(fs, obj, chunk_size=CHUNK, policy=FAST, start=False)
    time.sleep(0.2)
    assert gets(s3_proxy) == []
    first = reader(s3_proxy, obj)
    first.after_download(later.start)
    assert read_small(first) == DATA
    assert read_small(later) == DATA
    ranges = gets(s3_proxy)  # one file's five ranges (read-ahead: any order), then the other's
    each = sorted(
        {f"bytes={a}-{min(a + CHUNK, len(DATA)) - 1}" for a in range(0, len(DATA), CHUNK)}
    )
    assert sorted(ranges[:5]) == sorted(ranges[5:]) == each
    done: list[str] = []
    first.after_download(lambda: done.append("now"))  # already downloaded: called at once
    unread = RetryingReader(fs, obj, chunk_size=CHUNK, policy=FAST, start=False)
    unread.after_download(lambda: done.append("closed"))
    unread.close()
    assert done == ["now", "closed"]


def test_after_last_range_waits_for_the_consumer(s3_proxy: FaultProxy, obj: str) -> None:
    """Downloaded is not enough: the callback runs when reading moves into
    the last range (bytes 262144-300000 of five 64 KiB ranges), or on close."""
    stream = reader(s3_proxy, obj)
    reached: list[int] = []
    stream.after_last_range(lambda: reached.append(stream.tell()))
    assert stream.read(1) == DATA[:1]
    time.sleep(0.3)  # time enough to download all of it: still not called
    assert reached == []
    assert stream.read(270_000) == DATA[1:270_001]
    assert reached == [4 * CHUNK]
    stream.after_last_range(lambda: reached.append(-1))  # already reached: called at once
    unread = reader(s3_proxy, obj)
    unread.after_last_range(lambda: reached.append(-2))
    unread.close()
    assert reached == [4 * CHUNK, -1, -2]


def test_graph_round_trip_keeps_the_retry_options(
    tmp_path: Any, s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]]
) -> None:
    import streamdag as sd

    dp = _pipeline(s3_proxy, s3_bucket, shards_ahead=2)
    with pytest.warns(UserWarning, match="credentials left out of the saved graph"):
        sd.save(dp, tmp_path / "g.json")  # the loaded graph takes them from the environment
    loaded = sd.load(tmp_path / "g.json")
    node = loaded.node.inputs[0].inputs[0]
    assert node.op == "open_files_retrying" and node.params["shards_ahead"] == 2
    s3_proxy.fail_next(1, status=503, method="GET")
    assert set(_samples(loaded)) == shards


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_example_train_from_s3_runs(s3_server: str) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "train_from_s3.py"
    out = subprocess.run(
        [sys.executable, str(script), "--endpoint", s3_server, "--steps", "5"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step   5  loss" in out.stdout


def test_read_again_after_giving_up_loses_no_byte(s3_proxy: FaultProxy, obj: str) -> None:
    r = reader(s3_proxy, obj, read_ahead=2)
    head = r.read(CHUNK)  # chunk 0 consumed; chunks 1-2 already fetched or in flight
    s3_proxy.fail_next(50, status=503, method="GET")
    parts = [head]
    with pytest.raises(RetriesExhaustedError):
        while chunk := r.read(CHUNK):
            parts.append(chunk)
    s3_proxy.clear_faults()
    assert r.tell() == sum(map(len, parts))
    parts.append(read_small(r))
    assert b"".join(parts) == DATA


def test_open_files_retry_option_reads_through_faults(
    s3_proxy: FaultProxy, s3_bucket: str, s3_env: str, shards: set[tuple[str, bytes]]
) -> None:
    """The public spelling: dp.open_files(retry={...}) is the retrying reader."""
    lister = FileLister(
        f"s3://{s3_bucket}/shards/", "*.tar", storage_options=storage_options(s3_proxy.endpoint)
    )
    opened = lister.open_files(
        mode="b", retry={"chunk_size": 128 * 1024, "backoff_base": 0.01, "backoff_max": 0.05}
    )
    assert opened.node.op == "open_files_retrying"
    s3_proxy.cut_next_response(after_bytes=5_000, path_contains="shard-0001")
    got = _samples(opened.load_from_tar().webdataset(keys="webdataset"))
    assert sorted(got) == sorted(shards)
