"""The ``mldiff`` command line: one module per subcommand.

Each subcommand parses arguments, calls public library functions, and prints or
writes results. The command runs JAX in float64.
"""

import argparse
import sys

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line that names the command and points to --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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

    parser = _Parser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argument errors (2) and --help (0)
        return int(exit_.code or 0)
    if args.version:
        from mldiff._version import __version__

        print(f"mldiff {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from mldiff.cli import _common
    from mldiff.errors import MldiffError

    try:
        _common.check_arguments(args)  # every declared check, before any work
        return int(args.run(args) or 0)
    except (MldiffError, OSError) as err:
        message = _common.os_error_message(err) if isinstance(err, OSError) else err
        print(f"mldiff {args.command}: error: {message}", file=sys.stderr)
        _common.remove_created_folders()
        return 2
    finally:
        _common.forget_created_folders()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
