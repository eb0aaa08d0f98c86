"""Settings in one place, read from the environment with the prefix ``ROADNET_``.

Every part (service, worker, CLI) calls :func:`get_settings`; nothing else reads ``os.environ`` for
configuration. ``ROADNET_API_KEYS`` and ``ROADNET_FETCH_ALLOWED_HOSTS`` are comma-separated lists.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """The effective configuration of roadnet."""

    model_config = SettingsConfigDict(env_prefix="ROADNET_", extra="ignore")

    data_dir: Path = Field(
        default=Path.home() / ".local" / "share" / "roadnet",
        description="Job records, uploads and results; shared by the service and its workers.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker, e.g. redis://host:6379/0. Unset: embedded mode, no server needed.",
    )
    model_path: Path | None = Field(
        default=None, description="ONNX model to serve; unset: the default model shipped with roadnet."
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated API keys; empty: no authentication."
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, description="Largest upload or scene fetched by reference (413 above)."
    )
    fetch_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names and networks (CIDR) that scenes given by reference (href) "
        "may come from, and only those; empty: any host whose addresses are all public (no loopback, "
        "private or link-local address).",
    )
    fetch_timeout_s: float = Field(
        default=300.0, description="Deadline to fetch a scene given by reference (href), redirects included."
    )
    fetch_max_redirects: int = Field(default=5, description="Most redirects followed when fetching a scene.")
    max_scene_pixels: int = Field(default=40_000 * 40_000, description="Largest scene, width x height.")
    max_active_jobs_per_key: int = Field(
        default=20,
        description="Queued and running jobs one API key may have (429 above); without API keys, all "
        "callers together.",
    )
    scene_check_timeout_s: float = Field(
        default=30.0, description="Longest time an upload's check may take; a slower scene is refused."
    )
    scene_check_memory_mb: int = Field(
        default=1024, description="Address space of the process that checks an upload (MiB)."
    )
    min_valid_fraction: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Smallest share of a scene's pixels that must hold data (not nodata, NaN or inf).",
    )
    result_ttl_hours: float = Field(default=72.0, description="Finished jobs are removed after this long.")
    job_time_limit_s: int = Field(default=6 * 3600, description="Hard time limit of one job.")
    visibility_timeout_s: int = Field(
        default=7 * 3600,
        description="Redis broker: an unacknowledged job is redelivered after this long; longer than "
        "the job time limit so a running job is never delivered twice.",
    )
    ort_intra_op_threads: int = Field(
        default=0, description="ONNX Runtime threads per session; 0: all cores."
    )
    log_level: str = Field(default="INFO", description="Python logging level name.")

    def public(self) -> dict[str, object]:
        """The settings as JSON values with the secrets masked: API keys, and the broker's password."""
        from kombu.utils.url import maybe_sanitize_url

        values: dict[str, object] = self.model_dump(mode="json")
        values["api_keys"] = ["****"] * len(self.api_keys)
        if self.broker_url:
            values["broker_url"] = maybe_sanitize_url(self.broker_url)
        return values

    @field_validator("api_keys", "fetch_allowed_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
