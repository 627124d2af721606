"""Nekos bot: a Discord bot for the Nekos API v1."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
