"""``python -m configs <command>``: helpers for the registry. ``discover``: a registry entry from the org's describe."""

from __future__ import annotations

import sys

USAGE = "usage: python -m configs discover <Object> [<Object> ...] [--all]"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the command's module, imported only when asked for (each may connect to Salesforce)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["discover"]:
        from configs.discover import main as discover

        return discover(args[1:])
    print(USAGE, file=sys.stderr)
    return 0 if args[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main())
