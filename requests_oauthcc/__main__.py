"""``python -m requests_oauthcc``: the command line (see :mod:`requests_oauthcc.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
