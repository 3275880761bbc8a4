"""Credentials in ``storage_options`` stay out of saved graphs unless asked
for: the file holds no secret, the loaded graph reads them the filesystem's
usual way (environment, profile), worker processes still get the in-memory
ones, and the CLI warns about a file that holds some."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import streamdag as sd
from streamdag.cli import main
from tests.support.s3 import storage_options

SECRETS = {
    "key": "AKIDSAVEDKEY0001",
    "secret": "secret-value-0001",
    "token": "session-token-0001",
}
BOTO_SECRETS = {
    "aws_access_key_id": "AKIDSAVEDKEY0002",
    "aws_secret_access_key": "secret-value-0002",
    "aws_session_token": "session-token-0002",
}
HEADER = "Bearer header-token-0003"
PUBLIC = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}, "use_listings_cache": False}
LEFT_OUT = (
    "storage_options.key, storage_options.secret, storage_options.token, "
    "storage_options.client_kwargs.aws_access_key_id, "
    "storage_options.client_kwargs.aws_secret_access_key, "
    "storage_options.client_kwargs.aws_session_token, "
    "storage_options.client_kwargs.headers.Authorization"
)


def options() -> dict[str, Any]:
    """Every kind of credential: s3fs's own, botocore's, an HTTP header."""
    client = {**PUBLIC["client_kwargs"], **BOTO_SECRETS, "headers": {"Authorization": HEADER}}
    return {**SECRETS, "client_kwargs": client, "use_listings_cache": False}


def pipeline(opts: dict[str, Any]) -> sd.DataPipe[Any]:
    files = sd.FileLister("s3://bucket/train/", "*.txt", storage_options=opts, name="files")
    return files.open_files(name="open").readlines(name="lines")


def secret_values() -> list[str]:
    return [*SECRETS.values(), *BOTO_SECRETS.values(), HEADER]


@pytest.mark.parametrize("suffix", [".json", ".sdag"])
def test_save_leaves_credentials_out(tmp_path: Path, suffix: str) -> None:
    pipe = pipeline(options())
    path = tmp_path / f"g{suffix}"
    with pytest.warns(UserWarning) as record:
        sd.save(pipe, path)
    assert [str(w.message) for w in record] == [
        f"credentials left out of the saved graph: file_lister node 'files' ({LEFT_OUT}), "
        f"open_files node 'open' ({LEFT_OUT}); the loaded graph gets credentials the "
        "filesystem's usual way (for S3: environment variables, a profile or an instance "
        "role); pass include_secrets=True to write them"
    ]
    data = path.read_bytes()
    assert [s for s in secret_values() if s.encode() in data] == []
    loaded = sd.Graph.load(path)
    kept = {**PUBLIC, "client_kwargs": {**PUBLIC["client_kwargs"], "headers": {}}}
    for name in ("files", "open"):
        assert loaded.node(name).params["storage_options"] == kept
    assert pipe.node.inputs[0].params["storage_options"] == options()  # in memory: kept


def test_include_secrets_writes_them(tmp_path: Path) -> None:
    pipe = pipeline(options())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sd.save(pipe, tmp_path / "a.json", include_secrets=True)
        sd.Graph(pipe).save(tmp_path / "b.sdag", include_secrets=True)
    for path in (tmp_path / "a.json", tmp_path / "b.sdag"):
        assert sd.Graph.load(path).node("files").params["storage_options"] == options()


def test_graph_save_leaves_them_out_too(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="credentials left out"):
        sd.Graph(pipeline(options())).save(tmp_path / "g.json")
    saved = sd.Graph.load(tmp_path / "g.json").node("open").params["storage_options"]
    assert saved["client_kwargs"] == {**PUBLIC["client_kwargs"], "headers": {}}
    assert [k for k in saved if k in SECRETS] == []


@pytest.fixture
def local_graph(tmp_path: Path) -> tuple[Path, Path]:
    """A runnable local pipeline whose storage_options hold a password:
    saved with it (include_secrets=True) and without it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("alpha\nbeta\n")
    files = sd.FileLister(
        str(tmp_path / "data"), "*.txt", storage_options={"password": "pw-0004"}, name="files"
    )
    pipe = files.open_files(mode="r", name="open").readlines(name="lines")
    with_secret, without = tmp_path / "secret.json", tmp_path / "clean.json"
    sd.save(pipe, with_secret, include_secrets=True)
    with pytest.warns(UserWarning, match="credentials left out"):
        sd.save(pipe, without)
    return with_secret, without


@pytest.mark.parametrize("verb", ["show", "validate", "run", "draw", "convert", "set"])
def test_cli_warns_about_a_file_with_credentials(
    verb: str, local_graph: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"run": ["--no-progress"], "convert": [str(tmp_path / "out.sdag")]}
    extra["set"] = ["-o", str(tmp_path / "out.json"), "lines.strip_newline=false"]
    with_secret, without = local_graph
    assert main([verb, str(with_secret), *extra.get(verb, [])]) == 0
    warning = (
        f"streamdag {verb}: warning: {with_secret} holds credentials: file_lister node "
        "'files' (storage_options.password), open_files node 'open' "
        "(storage_options.password); anyone who can read the file can use them. Save it "
        "without them (sd.save leaves them out unless include_secrets=True) and provide "
        "them through the environment or a profile"
    )
    assert warning in capsys.readouterr().err.splitlines()
    assert main([verb, str(without), *extra.get(verb, [])]) == 0
    assert "warning" not in capsys.readouterr().err


def test_cli_rewrites_keep_what_the_file_holds(
    local_graph: tuple[Path, Path], tmp_path: Path
) -> None:
    """set and convert edit the user's own file: they do not drop its contents."""
    with_secret, _ = local_graph
    out = tmp_path / "out.json"
    assert main(["set", str(with_secret), "-o", str(out), "lines.strip_newline=false"]) == 0
    nodes = {n["name"]: n for n in json.loads(out.read_text())["nodes"]}
    assert nodes["files"]["params"]["storage_options"] == {"dict": {"password": "pw-0004"}}


# -- against a real S3 server -------------------------------------------------

KEY, SECRET = "AKIDS3TEST000005", "s3-secret-000005"
LINES = {"a.txt": b"alpha\nbeta\n", "b.txt": b"gamma\n"}


@pytest.fixture
def bucket_files(s3_fs: Any, s3_bucket: str) -> list[tuple[str, str]]:
    """Two small text files in the bucket; the (path, line) pairs they read as."""
    for name, data in LINES.items():
        s3_fs.pipe_file(f"{s3_bucket}/data/{name}", data)
    s3_fs.invalidate_cache()
    return [
        (f"s3://{s3_bucket}/data/{name}", line)
        for name, data in LINES.items()
        for line in data.decode().splitlines()
    ]


def s3_pipeline(endpoint: str, bucket: str) -> sd.DataPipe[Any]:
    opts = storage_options(endpoint, key=KEY, secret=SECRET)
    files = sd.FileLister(f"s3://{bucket}/data/", "*.txt", storage_options=opts, name="files")
    return files.sharding_filter().open_files().readlines()


def without_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3fs.S3FileSystem.clear_instance_cache()  # clients made with the old environment


@pytest.mark.s3
@pytest.mark.timeout(60)
def test_saved_graph_reads_s3_with_credentials_from_the_environment(
    tmp_path: Path,
    s3_env: str,
    s3_bucket: str,
    bucket_files: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "g.json"
    with pytest.warns(UserWarning, match="credentials left out"):
        sd.save(s3_pipeline(s3_env, s3_bucket), path)
    data = path.read_bytes()
    assert KEY.encode() not in data and SECRET.encode() not in data
    assert s3_env.encode() in data  # the endpoint is not a secret

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert list(sd.load(path)) == bucket_files

    without_env_credentials(monkeypatch)
    with pytest.raises(sd.NodeError, match="Unable to locate credentials"):
        list(sd.load(path))


@pytest.mark.s3
@pytest.mark.timeout(60)
def test_worker_processes_get_the_in_memory_credentials(
    s3_env: str,
    s3_bucket: str,
    bucket_files: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only saving drops credentials: a graph handed to worker processes keeps
    them, so it reads with no credentials in the environment."""
    without_env_credentials(monkeypatch)
    service = sd.MultiProcessingReadingService(num_workers=2)
    with sd.DataLoader2(s3_pipeline(s3_env, s3_bucket), reading_service=service) as loader:
        assert sorted(loader) == sorted(bucket_files)
