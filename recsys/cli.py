"""Entry point of the ``recsys`` command."""

import importlib

from recsys.commands import app

# Each module of recsys.commands registers its commands on the groups defined there.
# To add a module, add one line to this list.
COMMAND_MODULES = [
    "bench",
    "catalog",
    "corpus",
    "demo",
    "db",
    "melody",
    "separation",
    "serve",
    "tagging",
    "timbre",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"recsys.commands.{_name}")

__all__ = ["app"]

if __name__ == "__main__":
    app()
