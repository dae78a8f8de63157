"""Command-line interface: wiring only."""

from wbsrun.cli.app import cli, main

__all__ = ["cli", "main"]
