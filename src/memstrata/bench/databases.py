"""Where a benchmark's databases live, on the configured backend but never in the configured database.

SQLite: files ``<prefix>-<name>.db`` in the run's work directory. Postgres: schemas
``memstrata_<prefix>_<name>`` of the configured Postgres database, beside the configured schema, which a
benchmark never reads or writes. Two runs of one benchmark on one Postgres database at once would share
these schemas: run them one after the other.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..store import drop_database


class BenchDatabases:
    """The settings of a benchmark's database `name`, and their removal."""

    def __init__(self, settings: Settings, workdir: Path, prefix: str) -> None:
        self.settings, self.workdir, self.prefix = settings, Path(workdir), prefix
        self.postgres = settings.store == "postgres"
        self._made: list[str] = []

    def settings_for(self, name: str) -> Settings:
        """`settings` with the store swapped for the benchmark's database `name`."""
        if self.postgres:
            schema = f"memstrata_{self.prefix}_{name}".replace("-", "_")
            return self.settings.model_copy(update={"postgres_schema": schema})
        return self.settings.model_copy(update={"db": self.workdir / f"{self.prefix}-{name}.db"})

    def fresh(self, name: str) -> Settings:
        """The settings of database `name`, emptied of what an earlier run left there."""
        settings = self.settings_for(name)
        drop_database(settings)
        self._made.append(name)
        return settings

    def drop(self, names: list[str] | None = None) -> None:
        """Remove databases `names` (default: every one `fresh` made here), with their saved indexes."""
        for name in self._made if names is None else names:
            drop_database(self.settings_for(name))
