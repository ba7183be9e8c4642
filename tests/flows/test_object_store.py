"""The store and the catalog on S3: a real S3-compatible server (moto's standalone mode) on 127.0.0.1.

The credentials and the endpoint reach s3fs, zarr and delta-rs only through the standard ``AWS_*``
environment, as they would for a user's bucket. The filled-box model keeps the run cheap: this is
about where bytes go, not about quality.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_samatlas

pytestmark = pytest.mark.slow
BUCKET = "samatlas-test"
SECRET = "s3cr3t-that-must-never-be-written"  # moto accepts any credentials; this one is searched for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on loopback with one empty bucket; yields the ``AWS_*`` environment for it."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "samatlas-key-id", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("moto's S3 server did not start on 127.0.0.1")
                time.sleep(0.1)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        server.terminate()
        server.wait(timeout=30)


def _bucket_keys(prefix: str) -> list[str]:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    return [key.removeprefix(f"{BUCKET}/") for key in fs.find(f"{BUCKET}/{prefix}")]


def test_ingest_evaluate_and_query_on_s3(s3: dict[str, str], prefect_server: None, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "data"
    monkeypatch.setenv("SAMATLAS_STORE", f"s3://{BUCKET}/store")
    monkeypatch.setenv("SAMATLAS_CATALOG", f"s3://{BUCKET}/catalog/")
    ingest = run_samatlas(root, "ingest", "sample-radiomics")
    assert ingest.exit_code == 0, ingest.output
    evaluate = run_samatlas(root, "evaluate", "--model", "filled-box")
    assert evaluate.exit_code == 0, evaluate.output
    summary = run_samatlas(root, "catalog", "summary", "--by", "target")
    assert summary.exit_code == 0 and "lung" in summary.output, summary.output
    query = run_samatlas(root, "catalog", "query", "SELECT count(*) AS n, count(DISTINCT case_id) AS cases FROM results")
    assert query.exit_code == 0 and "27" in query.output, query.output
    again = run_samatlas(root, "evaluate", "--model", "filled-box")
    assert again.exit_code == 0 and "planned 0 units" in again.output, again.output
    assert not (root / "store").exists() and not (root / "catalog").exists()  # everything went to the bucket
    keys = _bucket_keys("")
    assert "store/sample-radiomics/lung1/zarr.json" in keys
    assert any(k.startswith("catalog/results/_delta_log/") for k in keys)
    everything = "".join(_read(k) for k in keys if k.endswith((".json", ".parquet")))
    outputs = ingest.output + evaluate.output + summary.output + query.output
    assert SECRET not in everything and SECRET not in outputs  # no credential in the store, catalog or logs

    # The README's way to read the same catalog with plain DuckDB: delta-rs lists, pyarrow reads.
    import duckdb
    import pyarrow.dataset as ds
    import s3fs
    from deltalake import DeltaTable

    files = DeltaTable(f"s3://{BUCKET}/catalog/results").file_uris()
    results = ds.dataset(files, format="parquet", filesystem=s3fs.S3FileSystem())
    by_model = duckdb.sql("SELECT model, count(*), count(DISTINCT (case_id, slice_index, label, spec_id, step)) "
                          "FROM results WHERE dataset = 'sample-radiomics' GROUP BY ALL").fetchall()
    assert by_model == [("filled-box", 27, 27)]  # one row per key
    del results


def _read(key: str) -> str:
    import s3fs

    return s3fs.S3FileSystem().cat_file(f"{BUCKET}/{key}").decode(errors="replace")


def test_a_failed_write_leaves_no_case_under_its_name(s3: dict[str, str]):
    """Object stores have no rename: the case is written in place, its root zarr.json last, and a
    failure half-way removes what was written, while the case that was there before is gone whole."""
    from tasks.store import StoredCase, is_complete, marked_complete, write_case
    from tasks.volume import Volume

    store = f"s3://{BUCKET}/atomic"
    volume = Volume(np.ones((1, 3, 8, 8), np.int16), np.ones((3, 8, 8), np.uint8), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), [])
    path = write_case(store, "ds", "case", volume, {"dataset": "ds"})
    assert path == f"{store}/ds/case" and is_complete(path) and marked_complete(path)
    assert StoredCase(path).mask_slice(1).sum() == 64

    broken = Volume(np.ones((1, 3, 8, 8), np.int16), np.ones((3, 8, 8), np.uint8), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), [])
    with pytest.raises(TypeError):
        write_case(store, "ds", "case", broken, {"dataset": "ds", "unserialisable": object()})
    assert not is_complete(path) and not marked_complete(path)
    assert _bucket_keys("atomic/ds/case") == []  # neither the old case nor a half of the new one


def test_an_unwritable_bucket_is_a_storage_error_naming_it(s3: dict[str, str], tmp_path: Path, prefect_server: None,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SAMATLAS_STORE", "s3://no-such-bucket-here/store")
    monkeypatch.setenv("SAMATLAS_CATALOG", str(tmp_path / "catalog"))
    done = run_samatlas(tmp_path, "ingest", "sample-radiomics")
    assert done.exit_code != 0
    assert "no-such-bucket-here" in done.output and "bucket exists" in done.output and "Traceback" not in done.output
    from catalog.query import connect

    cases = connect(tmp_path / "catalog").execute("SELECT count(*) FROM cases WHERE status = 'quarantined'").fetchone()
    assert cases == (0,)  # the sources are fine: nothing is quarantined for the store's failure
