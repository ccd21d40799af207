"""All configuration in one place, read from ``RECSYS_*`` environment variables and ``.env``."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of the whole application; every field can be set as ``RECSYS_<NAME>``."""

    # an empty variable (RECSYS_DATA_DIR=) means the default, not the current folder
    model_config = SettingsConfigDict(env_prefix="RECSYS_", env_file=".env", extra="ignore",
                                      env_ignore_empty=True)

    data_dir: Path = Field(Path("data"), description="Where the catalog, indexes and corpora live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default is a SQLite file in data_dir."
    )
    max_audio_seconds: float = Field(1200.0, description="Longest audio accepted (20 min).")
    min_audio_seconds: float = Field(1.0, description="Shortest audio accepted.")
    max_upload_mb: float = Field(50.0, description="Largest upload the API accepts.")
    api_keys: list[str] = Field(default_factory=list, description="Keys allowed to write.")
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda'.")
    separator: str = Field("bsrnn", description="Vocal separator used by ingest.")
    timbre_model: str = Field("contrastive", description="Timbre encoder used by ingest.")
    melody_model: str = Field("tcae", description="Melody encoder used by ingest.")
    tagger: str = Field("jetatag", description="Tagger used by ingest.")
    pitch_tracker: str = Field("cnn", description="Pitch tracker of the contours stored at "
                               "ingest and read off hums: 'yin', 'pyin' or 'cnn' (learned).")
    hum_search: str = Field(
        "auto", description="'dtw': align a hum with every track (most accurate, time grows "
        "with the catalog); 'embedding': melody-window candidates from the index, then "
        "alignment; 'auto': 'dtw' for catalogs of up to 200 tracks, else 'embedding'.")
    exact_index_max: int = Field(
        50_000, description="Vector spaces up to this size use exact search, larger use HNSW."
    )

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.sqlite_path}"

    @property
    def sqlite_path(self) -> Path | None:
        """The default SQLite file of the catalog; None when ``database_url`` is set."""
        return None if self.database_url else (self.data_dir / "catalog.sqlite").resolve()

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"


@lru_cache
def get_settings() -> Settings:
    return Settings()
