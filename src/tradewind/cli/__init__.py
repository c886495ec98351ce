"""The ``tradewind`` command line; the entry point is :func:`tradewind.cli.main.main`.

One module per command group, imported only when its command runs (see
:data:`tradewind.cli.main.COMMANDS`).
"""

from __future__ import annotations
