"""API keys: made, listed and revoked by the CLI (`python -m backend.cli.keys`) or by an admin key over HTTP
(`/api/keys`), checked on each request.

A key reads `tpk_<id>_<secret>`: the id (12 hex digits) names the key in records and listings, the secret is 256
random bits; only the SHA-256 of the whole key is stored."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.core.errors import DependencyUnavailable, Forbidden, Unauthorized
from backend.db.models import ApiKey
from backend.schemas.keys import Scope
from backend.services.rate_limit import RateLimiter

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = get_args(Scope)  # in the order they are listed
KEY_ID = "[0-9a-f]{12}"
_KEY = re.compile(rf"tpk_({KEY_ID})_[A-Za-z0-9_-]{{43}}")
# An unknown key id makes the API read the table again (a key made by another process), at most this often.
UNKNOWN_KEY_REREAD_SECONDS = 1.0


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a key (its id, name and scopes), or anyone when AUTH_ENABLED=false."""

    key_id: str | None
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def demand(self, scope: str, message: str) -> None:
        """Forbidden (403), with `message`, unless this principal holds `scope`."""
        if scope not in self.scopes:
            raise Forbidden(message, details=[{"scope": scope, "key_scopes": sorted(self.scopes)}])


ANYONE = Principal(key_id=None, name="anyone (AUTH_ENABLED=false)", scopes=frozenset(SCOPES))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    """'predict,read' -> ['predict', 'read']; ValueError naming what is allowed."""
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes are a comma-separated subset of {', '.join(SCOPES)}; got {text!r}")
    return [s for s in SCOPES if s in scopes]


def key_id_of(key: str) -> str | None:
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


def create_key(session: Session, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """A new key, stored hashed; the key itself is returned once."""
    if not 1 <= len(name) <= 100:
        raise ValueError("a key's name holds 1 to 100 characters")
    key_id = secrets.token_hex(6)
    key = f"tpk_{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(id=key_id, name=name, scopes=",".join(parse_scopes(",".join(scopes))), key_hash=hash_key(key))
    session.add(row)
    session.commit()
    return row, key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(session: Session, key_id: str) -> bool:
    """Whether a key of that id was active (it is revoked now)."""
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = datetime.now(UTC)
    session.commit()
    return True


def is_active(session: Session, key: str) -> bool:
    key_id = key_id_of(key)
    row = session.get(ApiKey, key_id) if key_id else None
    return row is not None and row.revoked_at is None and hmac.compare_digest(row.key_hash, hash_key(key))


class KeyDirectory:
    """The active keys as the API last read them from the database, read again every `ttl_seconds` (so a
    revoked key stops working within that) and when an unknown id comes in, at most once per
    `unknown_reread_seconds`. A key made through this process (`POST /api/keys`) is `remember`ed and works at
    once; one made by another process (the CLI) works within `unknown_reread_seconds` of its creation (or of the
    next read every `ttl_seconds`): until then it is refused like any unknown key.

    An unknown id is refused at once while the table was read within `unknown_reread_seconds` (no request held, no
    sleep); past that, the one request that finds it reads the table (one database round trip), the others answer
    from what was read before. A known key costs no database round trip, and while the database is down the keys
    last read keep working. `limiter` holds the keys' request rate limits (None: no limit), applied by
    backend.api.auth."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        unknown_reread_seconds: float = UNKNOWN_KEY_REREAD_SECONDS,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.sessions = sessions
        self.ttl = ttl_seconds
        self.clock = clock
        self.unknown_reread_seconds = unknown_reread_seconds
        self.limiter = limiter
        self._keys: dict[str, tuple[str, Principal]] = {}
        self._read_at: float | None = None
        self._reading = False
        self._lock = threading.Lock()

    @classmethod
    def for_api(cls, sessions: sessionmaker[Session], settings: Settings) -> KeyDirectory:
        """The API's directory: read every AUTH_CACHE_SECONDS, with the keys' rate limits (RATE_LIMIT_*)."""
        return cls(sessions, settings.auth_cache_seconds, limiter=RateLimiter.from_settings(settings))

    async def authenticate(self, key: str) -> Principal:
        key_id = key_id_of(key)
        if key_id is None:
            raise Unauthorized("not an API key of this service (they read tpk_<12 hex digits>_<43 characters>)")
        read_at = self._read_at
        if read_at is None:  # nothing read yet: every request waits for the first read
            await to_thread.run_sync(self._read, read_at)
        else:
            age = self.clock() - read_at
            # An unknown id may be a key made since the last read, but made-up ids must not flood the database:
            # read again at most once per unknown_reread_seconds, else refuse it at once.
            if age >= self.ttl or (key_id not in self._keys and age >= self.unknown_reread_seconds):
                await self._read_again(read_at)
        known = self._keys.get(key_id)
        if known is None or not hmac.compare_digest(known[0], hash_key(key)):
            raise Unauthorized("unknown or revoked API key")
        return known[1]

    def remember(self, row: ApiKey) -> None:
        """Accept a key made through this process at once (others read it when it first comes in)."""
        with self._lock:
            self._keys = {**self._keys, row.id: _entry(row)}

    def forget(self, key_id: str) -> None:
        """Refuse a key revoked through this process at once (others refuse it within `ttl_seconds`)."""
        with self._lock:
            self._keys = {k: v for k, v in self._keys.items() if k != key_id}

    async def aclose(self) -> None:
        if self.limiter is not None:
            await self.limiter.aclose()

    async def _read_again(self, seen: float) -> None:
        """Read the table unless another request of this event loop is reading it (this one goes on with the keys
        read before, rather than hold a worker thread waiting for the lock)."""
        if self._reading:
            return
        self._reading = True
        try:
            await to_thread.run_sync(self._read, seen)
        finally:
            self._reading = False

    def _read(self, seen: float | None) -> None:
        with self._lock:
            if self._read_at != seen:  # another request read the table meanwhile
                return
            try:
                with self.sessions() as session:
                    rows = session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))).all()
            except SQLAlchemyError as exc:
                if self._read_at is None:
                    raise DependencyUnavailable("database", "cannot read the API keys") from exc
                log.warning("cannot read the API keys; the ones read before stay valid: %s", str(exc)[:200])
                self._read_at = self.clock()
                return
            self._keys = {row.id: _entry(row) for row in rows}
            self._read_at = self.clock()


def _entry(row: ApiKey) -> tuple[str, Principal]:
    return row.key_hash, Principal(row.id, row.name, frozenset(row.scopes.split(",")))
