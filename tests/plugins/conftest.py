"""The WebAssembly plugins' fixtures (tests/plugin_kit.py)."""

from plugin_kit import built_plugins  # noqa: F401
