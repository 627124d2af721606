"""Two shard processes sharing lookups and the member cooldown through Redis.

The bot runs as two ``python -m bot`` processes (``SHARD_COUNT=2``, one shard each) against one
Discord emulator and one fake Nekos API at the live per-IP rules, each with a data folder of its
own and one Redis (as on two hosts). A member of a server on each shard sees one bot: their
cooldown holds whichever process answers, and an image looked up in both costs the API one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    DISCORD_TOKEN,
    SMALL_CATALOGUE,
    final_message,
    message_text,
    shown_image_ids,
)
from tests.e2e.test_shards import SHARDS, World, assert_kept_to_the_live_rules, bot_for, connected
from tests.fakes.dataset import Dataset, generate_dataset
from tests.fakes.discord_emulator import ChannelRecord, ChannelType, DiscordEmulator, UserRecord
from tests.fakes.nekos_api import FakeNekosAPI

pytestmark = pytest.mark.timeout(180)

ANSWER_TIMEOUT = 40.0


class Two:
    """A server on each shard, each with a #general, and one member in both."""

    def __init__(self, emu: DiscordEmulator) -> None:
        self.member = emu.add_user("member")
        self.other = emu.add_user("other")
        self.channels: list[ChannelRecord] = []
        for shard in range(SHARDS):
            guild = emu.add_guild(f"Guild {shard}", shard=(shard, SHARDS))
            emu.add_member(guild, self.member)
            emu.add_member(guild, self.other)
            self.channels.append(emu.add_channel(guild, ChannelType.GUILD_TEXT, "general"))


@pytest.fixture
async def shared_world(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[World, Two, Dataset]]:
    dataset = generate_dataset(**SMALL_CATALOGUE)
    async with (
        DiscordEmulator(token=DISCORD_TOKEN, shards=SHARDS, max_concurrency=1) as emu,
        FakeNekosAPI(dataset, rate_limit=(1, 1.0), strikes_before_block=10) as fake,
    ):
        two = Two(emu)
        extra = {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": redis_prefix,
            "COOLDOWN_USES": "2",
            "COOLDOWN_SECONDS": "120",
        }
        yield World(emu, fake, tmp_path, {}, extra, shared_folder=False), two, dataset


async def ask(
    world: World, user: UserRecord, channel: ChannelRecord, subcommand: str, **options: str
) -> dict[str, object]:
    rec = await world.emu.slash(user, channel, "neko", subcommand=subcommand, options=options)
    return await final_message(rec, ANSWER_TIMEOUT)


async def test_one_member_one_cooldown_and_one_api_call_across_two_shard_processes(
    shared_world: tuple[World, Two, Dataset],
) -> None:
    world, two, dataset = shared_world
    image = next(i for i in dataset.images if i.nsfw == "sfw")
    async with bot_for(world, 0, "shard0.log") as bot0, bot_for(world, 1, "shard1.log") as bot1:
        await connected(world, bot0, bot1)

        # The same image asked for in a server of each shard, at once.
        answers = await asyncio.gather(
            *(ask(world, two.other, channel, "image", id=image.id) for channel in two.channels)
        )
        assert [shown_image_ids(answer) for answer in answers] == [[image.id], [image.id]]
        image_calls = [r for r in world.fake.api_requests if r.path.endswith(f"/{image.id}")]
        assert len(image_calls) == 1, image_calls

        # The member uses up their two uses in the server on shard 0 ...
        for _ in range(2):
            served = await ask(world, two.member, two.channels[0], "image", id=image.id)
            assert shown_image_ids(served) == [image.id]
        # ... and is told to wait in the server on shard 1, answered by the other process.
        slowed = await ask(world, two.member, two.channels[1], "image", id=image.id)
        assert "Slow down a little" in message_text(slowed)

        about = await ask(world, two.other, two.channels[1], "about")
        fields = {f["name"]: f["value"] for f in about["embeds"][0]["fields"]}
        assert fields["Shared serving"] == (
            "image pool, lookups and cooldowns shared with the other processes (Redis)"
        )

    world.emu.assert_no_violations()
    assert_kept_to_the_live_rules(world.fake)
