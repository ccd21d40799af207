"""Entry point of the ``recsys`` command."""

# Each module registers its commands on the groups in recsys.commands.
from recsys.commands import (
    app,
    corpus,  # noqa: F401,E402
)

__all__ = ["app"]

if __name__ == "__main__":
    app()
