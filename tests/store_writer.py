"""Write settings in a loop, printing ``ACK n`` after each committed write (for the kill -9 test).

Usage: ``python tests/store_writer.py DATABASE_URL GUILD_ID FIRST_N``. Write ``n`` (from FIRST_N
up) is made by actor ``n``: every fifth one changes the guild default to the next rating in the
cycle, the others set channel ``CHANNEL_BASE + n`` to ``RATINGS[n % 3]``. Runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.nekos.models import Rating
from bot.store import open_store

CHANNEL_BASE = 1_000_000
RATINGS = (Rating.SFW, Rating.QUESTIONABLE, Rating.NSFW)


def is_default_write(n: int) -> bool:
    """Whether write ``n`` changes the guild default (else it sets a channel override)."""
    return n % 5 == 4


def next_default(current: Rating | None) -> Rating:
    """The default after ``current`` in the cycle; always differs, so every write is recorded."""
    return Rating.SFW if current is None else RATINGS[(RATINGS.index(current) + 1) % 3]


async def main(database_url: str, guild_id: int, first: int) -> None:
    store = open_store(database_url)
    await store.open()
    n = first
    while True:
        if is_default_write(n):
            current = (await store.get_guild_settings(guild_id)).default
            await store.set_guild_default(guild_id, next_default(current), actor_id=n)
        else:
            await store.set_channel_override(guild_id, CHANNEL_BASE + n, RATINGS[n % 3], n)
        print(f"ACK {n}", flush=True)
        n += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
