"""`python -m envs list`: print the catalog of registered environments."""

import argparse
import sys

import envs


def main(argv: list[str] | None = None) -> int:
    """Print the catalog: id, family, hidden parameter, default episodes, oracle."""
    parser = argparse.ArgumentParser(prog="python -m envs", description="icl-arena environments")
    parser.add_argument("command", choices=["list"], help="list: print the registered environments")
    parser.add_argument("--family", default=None, help="only this family")
    args = parser.parse_args(argv)
    rows = [e for e in envs.catalog() if args.family in (None, e.family)]
    header = ("id", "family", "hidden task", "episodes", "oracle")
    table = [header] + [(e.env_id, e.family, e.hidden, str(e.episodes), e.oracle) for e in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows)} environments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
