"""Developer tools that are not part of the bot (run with ``python -m tools.NAME``)."""
