"""`python -m envs list`: print the catalog of registered environments (yours included)."""

import argparse
import sys

import envs


def main(argv: list[str] | None = None) -> int:
    """Print the catalog: id, family, hidden parameter, default episodes, oracle.

    `python -m envs list my_pkg.envs:mylab/Foo-v0` imports `my_pkg.envs` first and prints that id;
    `--imports my_pkg.envs` imports modules that register envs (installed `icl_arena.envs` entry points
    are loaded anyway). Ids registered with gymnasium directly are listed with what their spec says.
    """
    parser = argparse.ArgumentParser(prog="python -m envs", description="icl-arena environments")
    parser.add_argument("command", choices=["list"], help="list: print the registered environments")
    parser.add_argument("ids", nargs="*", help="only these ids (bare, or gymnasium's module:ns/Id-v0 form)")
    parser.add_argument("--family", default=None, help="only this family")
    parser.add_argument("--imports", nargs="*", default=[], metavar="MODULE", help="modules to import first")
    args = parser.parse_args(argv)
    try:
        envs.import_modules(args.imports)
        wanted = [envs.resolve_env_id(env_id) for env_id in args.ids]
    except ValueError as error:
        print(f"python -m envs: error: {error}", file=sys.stderr)
        return 2
    rows = [e for e in envs.catalog() if args.family in (None, e.family) and (not wanted or e.env_id in wanted)]
    listed = {entry.env_id for entry in rows}
    for env_id in wanted:  # registered with gymnasium directly: not in the catalog, still playable
        if env_id not in listed:
            rows.append(envs.CatalogEntry(env_id, "(gymnasium)", "", envs.default_episodes(env_id), ""))
    header = ("id", "family", "hidden task", "episodes", "oracle")
    table = [header] + [(e.env_id, e.family, e.hidden, str(e.episodes), e.oracle) for e in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows)} environments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
