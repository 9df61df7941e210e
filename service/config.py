"""Settings, read from `DENDRITE_*` environment variables; the only reader of the environment."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DENDRITE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("dendrite-data"),
        description="Where embedded mode keeps its SQLite file, broker queue and artifacts.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite (WAL) in the data directory."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL; default: an on-disk queue in the data directory.",
    )
    artifacts_dir: Path | None = Field(
        default=None,
        description="Where datasets and models are stored; default: DATA_DIR/artifacts.",
    )
    broker_polling_interval: float = Field(
        default=0.1, description="Seconds between polls of the on-disk broker (embedded mode)."
    )
    visibility_timeout: int = Field(
        default=6 * 3600, description="Redis visibility timeout; above the longest allowed job."
    )
    heartbeat_interval: float = Field(default=5.0, description="Seconds between job heartbeats.")
    stale_after: float = Field(
        default=120.0,
        description="A running job whose heartbeat is older than this many seconds is failed.",
    )
    prediction_cache_size: int = Field(
        default=16, description="Loaded models kept for predictions."
    )
    max_upload_bytes: int = Field(default=1 << 30, description="Largest accepted upload.")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'dendrite.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "dendrite-fs://"

    @property
    def broker_dir(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def artifacts_path(self) -> Path:
        return (self.artifacts_dir or self.data_dir / "artifacts").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
