"""The ``mldiff`` command line: one module per subcommand.

Each subcommand parses arguments, calls public library functions, and prints or
writes results. The command runs JAX in float64.
"""

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from mldiff.cli import (
        active,
        calculate,
        conductivity,
        elastic,
        electrons,
        evaluate,
        finetune,
        md,
        phonons,
        qha,
        quickstart,
        recommend,
        relax,
        screen,
        stability,
        train,
        ttsp,
    )

    parser = argparse.ArgumentParser(
        prog="mldiff",
        description="Differentiable physics for machine learning in materials science.",
    )
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        quickstart,
        calculate,
        relax,
        train,
        evaluate,
        md,
        phonons,
        elastic,
        qha,
        conductivity,
        active,
        electrons,
        ttsp,
        stability,
        screen,
        finetune,
        recommend,
    ):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mldiff`` console script."""
    import jax

    jax.config.update("jax_enable_x64", True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mldiff._version import __version__

        print(f"mldiff {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from mldiff.errors import MldiffError

    try:
        return int(args.run(args) or 0)
    except MldiffError as err:
        print(f"mldiff {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
