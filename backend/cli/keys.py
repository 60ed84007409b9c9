"""`python -m backend.cli.keys`: create, list and revoke the API's keys (in the database of DATABASE_URL).

python -m backend.cli.keys create analyst --scopes predict,read     prints the new key, once
python -m backend.cli.keys list
python -m backend.cli.keys revoke <key id>
python -m backend.cli.keys ensure dashboard --scopes predict,read,admin --file var/keys/dashboard.key
    the key in that file if it is still active, else a new one written there (mode 0600): for launchers
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backend.core.config import Settings, get_settings
from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory
from backend.services.keys import SCOPES, create_key, is_active, list_keys, parse_scopes, revoke_key


def write_secret(path: Path, text: str) -> None:
    """`text` in `path`, readable by its owner only (a key, a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")


def ensure_key(settings: Settings, name: str, scopes: list[str], path: Path) -> tuple[str, bool]:
    """The active key kept in `path`, or a new one stored there; (key, whether it was created)."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            kept = path.read_text().strip() if path.exists() else ""
            if kept and is_active(session, kept):
                return kept, False
            _, key = create_key(session, name, scopes)
    finally:
        engine.dispose()
    write_secret(path, key)
    return key, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.cli.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    scopes_help = f"comma-separated, of {', '.join(SCOPES)}"
    create = commands.add_parser("create", help="create a key and print it (shown this once)")
    create.add_argument("name")
    create.add_argument("--scopes", default="predict", help=f"{scopes_help} (default: predict)")
    commands.add_parser("list", help="every key: id, name, scopes, created, revoked")
    revoke = commands.add_parser("revoke", help="revoke a key by its id (the API refuses it within AUTH_CACHE_SECONDS)")
    revoke.add_argument("key_id")
    ensure = commands.add_parser("ensure", help="the key kept in --file if still active, else a new one there")
    ensure.add_argument("name")
    ensure.add_argument("--scopes", required=True, help=scopes_help)
    ensure.add_argument("--file", required=True, type=Path)
    args = parser.parse_args(argv)

    settings = get_settings()
    try:
        scopes = parse_scopes(args.scopes) if hasattr(args, "scopes") else []
    except ValueError as exc:
        parser.error(str(exc))
    upgrade(settings.database_url)
    if args.command == "ensure":
        key, created = ensure_key(settings, args.name, scopes, args.file)
        print(f"{'created' if created else 'kept'} key {args.name} in {args.file}", file=sys.stderr)
        return 0
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            if args.command == "create":
                try:
                    row, key = create_key(session, args.name, scopes)
                except ValueError as exc:
                    parser.error(str(exc))
                print(f"key id {row.id} ({row.name}, scopes {row.scopes}); the key, shown this once:", file=sys.stderr)
                print(key)
            elif args.command == "list":
                for row in list_keys(session):
                    revoked = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                    created = f"{row.created_at:%Y-%m-%d %H:%M}"
                    print(f"{row.id}  {row.name:<20} {row.scopes:<22} created {created}  {revoked}")
            elif not revoke_key(session, args.key_id):
                print(f"no active key {args.key_id!r}", file=sys.stderr)
                return 1
            else:
                print(f"revoked {args.key_id}", file=sys.stderr)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
