"""Command line: ``python -m requests_oauthcc demo``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="requests-oauthcc",
        description="OAuth 2.0 Client Credentials for requests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo", help="run the main job against an embedded local authorization server"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        return run()
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse checks


if __name__ == "__main__":
    raise SystemExit(main())
