"""Tables of the service's records. Schema changes go through Alembic (backend/db/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# SQLite autoincrements only INTEGER primary keys.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware on the way out on every database (SQLite keeps no zone, PostgreSQL does). On the way in,
    in UTC: SQLite would otherwise store and compare the wall clock of whatever zone a value came in (a naive
    value is taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime()}


class Prediction(Base):
    """One single prediction answered by the API: an ECLO answer's figures in `eclo` and `risk_level` (columns,
    to filter and sort by), any other kind's answer whole in `output`."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]]
    eclo: Mapped[float | None] = mapped_column(Float)
    risk_level: Mapped[str | None] = mapped_column(String(16))
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # Given by the recorder: a write whose commit was answered by no one (the connection dropped) is retried from
    # the spill file, and lands once.
    record_id: Mapped[str | None] = mapped_column(String(32))
    # The API key that asked (None with AUTH_ENABLED=false).
    key_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_predictions_created_at", "created_at"),
        Index("ix_predictions_key_id_created_at", "key_id", "created_at"),
        # With created_at: on PostgreSQL the table is partitioned by it, and a unique index must hold the key.
        Index("ix_predictions_record_id", "record_id", "created_at", unique=True),
        Index("ix_predictions_model_name_created_at", "model_name", "created_at"),
    )


class BatchJob(Base):
    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # The id of the API key that submitted it (None with AUTH_ENABLED=false); others need the `read` scope.
    owner: Mapped[str | None] = mapped_column(String(32))

    rows: Mapped[list[BatchRow]] = relationship(
        back_populates="batch", order_by="BatchRow.row_index", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_batch_jobs_created_at", "created_at"),
        Index("ix_batch_jobs_status_created_at", "status", "created_at"),
    )


class BatchRow(Base):
    """The answer (the model's own output, whatever its kind) or the validation error of one row of a batch."""

    __tablename__ = "batch_rows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"))
    row_index: Mapped[int] = mapped_column(Integer)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[list[Any] | None] = mapped_column(JSON)

    batch: Mapped[BatchJob] = relationship(back_populates="rows")

    __table_args__ = (UniqueConstraint("batch_id", "row_index"),)


class Sensor(Base):
    __tablename__ = "sensors"

    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    name: Mapped[str | None] = mapped_column(String(200))
    free_flow_mph: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# A reading as stored in bulk: (sensor_id, UTC timestamp, speed_mph, volume, occupancy, utc_offset_minutes).
ReadingRow = tuple[str, datetime, float, float | None, float | None, int]


class TrafficReading(Base):
    """One sensor reading, stored in UTC with the offset it came in; the first of a (sensor, timestamp) is kept,
    a re-sent one is a duplicate and stored nowhere. The unique constraint is also the sensor + time index.

    `sensor_id` names a registered sensor, checked by the service and, set-based, by the bulk statement itself
    (`backend.db.readings`) rather than by a foreign key: its per-row trigger cost half of PostgreSQL's insert.
    For the same reason (sensor, timestamp) is the primary key (no surrogate id and its sequence and index), and
    on PostgreSQL the time index is a BRIN: readings arrive roughly in time order, and a B-tree on time cost a
    fifth of each insert."""

    __tablename__ = "traffic_readings"

    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(primary_key=True)
    speed_mph: Mapped[float] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)
    occupancy: Mapped[float | None] = mapped_column(Float)
    utc_offset_minutes: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")

    __table_args__ = (Index("ix_traffic_readings_timestamp", "timestamp", postgresql_using="brin"),)


class LatestStoredReading(Base):
    """Each sensor's newest stored reading, kept by the statement that stores readings (`backend.db.readings`):
    the network's current state is read from here in O(sensors), not from the whole history."""

    __tablename__ = "latest_readings"

    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[datetime]
    speed_mph: Mapped[float] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)
    occupancy: Mapped[float | None] = mapped_column(Float)
    utc_offset_minutes: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")


class Dataset(Base):
    """An uploaded file: its description here, the file itself, its columnar copy, profile and results in file
    storage. `kind` is "table" for any table, else the model its rows were checked against (`model_name`)."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(64), server_default="eclo")
    model_name: Mapped[str | None] = mapped_column(String(64))
    layout: Mapped[str | None] = mapped_column(String(16))
    encoding: Mapped[str] = mapped_column(String(16))
    columns: Mapped[list[str]] = mapped_column(JSON)
    rows: Mapped[int] = mapped_column(Integer)
    valid_rows: Mapped[int] = mapped_column(Integer)
    problems: Mapped[int] = mapped_column(Integer)
    has_outcomes: Mapped[bool] = mapped_column(Boolean)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    latest_job_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_datasets_uploaded_at", "uploaded_at"),)


class DatasetJob(Base):
    """One scoring of a dataset's valid rows, in chunks spread over the workers."""

    __tablename__ = "dataset_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    chunk_rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_dataset_jobs_dataset_id", "dataset_id"),)


class ShareToken(Base):
    """A link that lets someone read a dataset until it expires or is revoked; only the token's SHA-256 is kept."""

    __tablename__ = "share_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_share_tokens_dataset_id", "dataset_id"),)


class ApiKey(Base):
    """A key for the API: its public id (the first part of the key, named in records), its scopes, and the
    SHA-256 of the whole key; the key itself is shown once, at creation. A key is 256 random bits, so a fast
    hash suffices (there is nothing to brute-force, unlike a password)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Conversation(Base):
    """One of the assistant's conversations, owned by the API key that began it (None with AUTH_ENABLED=false).
    `dataset_id` names the dataset it is about, without a foreign key: a dataset may be deleted and the
    conversation kept (its messages name the dataset anyway). `model` is the LLM model last used."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(200))
    dataset_id: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_conversations_key_id_updated_at", "key_id", "updated_at"),)


class ConversationMessage(Base):
    """One message of a conversation, at `position` (0-based): `content` is the text shown to users; `blocks` the
    provider-neutral messages the turn added (user text, assistant tool_use, tool_result...), replayed to the
    LLM; `steps` the tool calls ({order, name, input, output, is_error, elapsed_ms}); `usage` the token counts."""

    __tablename__ = "conversation_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    steps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model: Mapped[str | None] = mapped_column(String(100))
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_conversation_messages_conversation_id_position", "conversation_id", "position", unique=True),
    )


class ModelAlias(Base):
    """Which version of a model name an alias points at: `champion` is what every process serves, `challenger`
    is scored beside it (shadow) without being answered."""

    __tablename__ = "model_aliases"

    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    alias: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasMove(Base):
    """The append-only history of alias moves: who moved which alias of which model, when, from what, to what
    (`to_version` None: the alias was removed)."""

    __tablename__ = "model_alias_moves"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(64))
    alias: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[str | None] = mapped_column(String(64))
    to_version: Mapped[str | None] = mapped_column(String(64))
    moved_by: Mapped[str | None] = mapped_column(String(32))
    moved_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_model_alias_moves_model_name_id", "model_name", "id"),)


class TrainingJob(Base):
    """A request to train a new version of a model, and how it went."""

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    stage: Mapped[str | None] = mapped_column(String(64))
    fraction: Mapped[float] = mapped_column(Float, default=0.0)
    log: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(32))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Beaten by the training process while it runs: a job whose beat stops (its worker killed) is failed.
    heartbeat_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_training_jobs_model_name_created_at", "model_name", "created_at"),)


class ShadowScore(Base):
    """A single prediction scored again by the challenger, off the response path, beside what the champion
    answered."""

    __tablename__ = "shadow_scores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_name: Mapped[str] = mapped_column(String(64))
    champion_version: Mapped[str] = mapped_column(String(64))
    challenger_version: Mapped[str] = mapped_column(String(64))
    champion_value: Mapped[float | None] = mapped_column(Float)
    challenger_value: Mapped[float | None] = mapped_column(Float)
    champion_level: Mapped[str | None] = mapped_column(String(32))
    challenger_level: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_shadow_scores_model_name_created_at", "model_name", "created_at"),)


class ReadingRollup(Base):
    """One sensor's readings of one UTC hour sent with one offset, summed up (`backend.db.rollups`): they outlive
    the raw readings, and the usual-speed profile is read from them. `missing` counts the speeds <= 0, the speed
    figures are over the others; `quarters` holds, for each local quarter hour the hour covers (4, or 5 when the
    offset is not a multiple of 15 minutes), the histogram of its speeds in tenths of a mph: [[tenths, count]...]."""

    __tablename__ = "reading_rollups"

    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    utc_offset_minutes: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    readings: Mapped[int] = mapped_column(Integer)
    missing: Mapped[int] = mapped_column(Integer)
    speed_sum: Mapped[float] = mapped_column(Float)
    speed_min: Mapped[float | None] = mapped_column(Float)
    speed_max: Mapped[float | None] = mapped_column(Float)
    quarters: Mapped[list[list[list[int]]]] = mapped_column(JSON)


class RollupMark(Base):
    """An hour whose readings changed since it was rolled up: one row per hour of each ingest call, never merged,
    so that a roll-up deletes only the marks it read and one made meanwhile survives."""

    __tablename__ = "reading_rollup_marks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hour: Mapped[datetime]

    __table_args__ = (Index("ix_reading_rollup_marks_hour", "hour"),)
