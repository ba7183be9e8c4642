"""Everything a user can set, in one place (environment prefix ``SAMATLAS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tasks.locations import Location, as_location


class Settings(BaseSettings):
    """Where samatlas keeps its data and how it computes.

    Paths left unset derive from ``data_root`` so that one variable moves everything.
    """

    model_config = SettingsConfigDict(env_prefix="SAMATLAS_")

    data_root: Path = Field(Path("samatlas-data"), description="Holds the store, the catalog and the cache.")
    store: str | None = Field(
        None, description="Zarr store root: a folder or an fsspec URL such as s3://bucket/store (default <data_root>/store).")
    catalog: str | None = Field(
        None, description="Catalog root, one Delta table per catalog table: a folder or an fsspec URL such as "
                          "s3://bucket/catalog (default <data_root>/catalog).")
    cache_dir: Path | None = Field(None, description="Download cache (default <data_root>/cache).")
    mirror_url: str | None = Field(
        None, description="Fetch each downloadable release file NAME from <mirror_url>/NAME instead of its published "
                          "URL (a local mirror, or a test server); checksums are still the card's.")
    cards: Path | None = Field(None, description="A folder of YAML dataset cards, registered beside the built-in ones.")
    ingest_cron: str = Field("0 3 * * 0", description="Scheduled ingest refresh (Sun 03:00; unchanged cases skip).")
    evaluate_cron: str = Field("0 2 * * *", description="Scheduled re-evaluation (02:00; computes only what results lack).")
    cluster: str = Field("local", description="local, tcp://HOST:PORT, slurm or kubernetes.")
    cluster_spec: Path | None = Field(
        None, description="The spec file of --cluster slurm|kubernetes (default infra/<cluster>.yaml, which you edit).")
    cluster_min_workers: int = Field(0, ge=0, description="Adaptive scaling floor: SLURM jobs or Kubernetes workers kept up.")
    cluster_max_workers: int = Field(8, ge=1, description="Adaptive scaling ceiling: SLURM jobs or Kubernetes workers at most.")
    dashboard: bool = Field(True, description="Serve the Dask dashboard of local clusters (its link is printed).")
    dashboard_address: str = Field(
        "127.0.0.1:8787", description="Where a local cluster serves its dashboard (loopback; a busy port moves).")
    unit_timeout_s: float = Field(
        3600, gt=0, description="A work unit running longer is stopped (its worker restarted) and reported failed.")
    paused_limit_s: float = Field(
        120, gt=0, description="When every Dask worker has been paused for memory this long, the units still waiting "
                               "are given up and reported failed (they stay planned).")
    n_workers: int | None = Field(None, description="Local Dask workers (default: one per core, at most 4 and one per 3 GiB of memory).")
    device: str = Field("cpu", description="cpu or cuda.")
    bf16: bool = Field(
        False, description="Run the image encoder under bf16 autocast (CUDA only; LiteMedSAM, SAM and SAM 2 "
                           "families): faster on a GPU, and its rows are keyed apart (model_sha256 + '+bf16').")
    encoder_batch: int = Field(
        8, ge=1, description="Slices per image-encoder pass where decoding is batched (a GPU; a pass that runs out of "
                             "memory is halved); on a CPU one slice per pass, as a batch is no faster there. Read by each worker.")
    model_runtime: str = Field(
        "auto", description="Where a model's encoder and mask decoder run: auto (ONNX Runtime on a CPU where the model "
                            "has an export, else torch), torch, or onnxruntime.")
    model_cache: Path | None = Field(
        None, description="Networks exported for ONNX Runtime, one file per checkpoint and part (default <cache_dir>/models).")
    commit_rows: int = Field(50_000, ge=1, description="Evaluate commits its result rows in batches of this many rows ...")
    commit_s: float = Field(30.0, gt=0, description="... or at least this often (seconds), and when the run ends.")
    query_timeout_s: float = Field(60.0, gt=0, description="Time limit of one `catalog query` (seconds).")
    query_memory: str = Field("4GB", description="Memory limit of one `catalog query` (DuckDB size, e.g. 4GB).")
    # 8.9 GB RSS was measured ingesting one 800^3 (512 M voxel) case: about 17 bytes per voxel at peak.
    # 320 M voxels (a 512x512x1220 CT, larger than any case of the survey's releases) is then about
    # 5.6 GB, so the two cases a 2-core machine ingests at once fit in 24 GiB with room to spare.
    max_case_voxels: int = Field(320_000_000, description="Largest case (all channels and the label) ingested, in voxels, checked from file headers before any pixel is read.")
    max_archive_bytes: int = Field(2 * 1024**4, description="Largest total a release archive may expand to (bytes); free disk space is also checked.")
    max_member_bytes: int = Field(16 * 1024**3, description="Largest single file a release archive may hold (bytes).")

    @property
    def store_root(self) -> Location:
        """The Zarr store root (a URL string, or an absolute Path: the catalog records each case's path
        under it, which must not depend on the folder a later command runs in)."""
        return _absolute(as_location(self.store) if self.store else self.data_root / "store")

    @property
    def catalog_root(self) -> Location:
        """The catalog root (a URL string, or an absolute Path, as workers get it)."""
        return _absolute(as_location(self.catalog) if self.catalog else self.data_root / "catalog")

    @property
    def cache_root(self) -> Path:
        """The download cache."""
        return self.cache_dir or self.data_root / "cache"

    @property
    def model_cache_root(self) -> Path:
        """Exported networks (ONNX files)."""
        return self.model_cache or self.cache_root / "models"


def _absolute(location: Location) -> Location:
    """A local path made absolute against the current folder (links kept); a URL unchanged."""
    return location.absolute() if isinstance(location, Path) else location


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
