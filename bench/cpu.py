"""CPU: the in-process cost of one pooled ``/neko random`` served from stock, and where it goes.

The pool is stocked first (from images read off the fake once), then each iteration does what
the cog does for ``/neko random``, end to end and with no upstream call: ``random_request``
(category check, gating filter), ``pool.should_defer``, ``Replies.random`` (``pool.take``,
``embeds.image_embed`` + ``fit_message``, the "Another" and link buttons). Commands are spread
over many guilds, as on a busy bot, so the pool's no-repeat and reuse rules do real work.

The naive line is the same command with the naive serving in front: its client-side share of an
upstream call per command (decoding and parsing a one-image ``/image/random`` response) plus the
same rendering. HTTP and pacing are left out, so it is a floor for the naive bot's CPU cost.

A second pass under cProfile shows where the pooled time goes (cumulative, per command). The
profiler's own overhead inflates the small functions, so read the shares, not the microseconds.

    .venv/bin/python -m bench.cpu [--iterations 2000] [--stock 1000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from bot import embeds as render
from bot.gating import RefusalCounter
from bot.nekos import NekosClient
from bot.nekos.client import Route
from bot.nekos.models import Image, Page, Rating, parse_image_data, parse_page
from bot.nekos.pacing import Pacer, Priority
from bot.replies import Replies, Reply
from bot.serving import ImagePool, ImageRequest, PoolSettings
from bot.serving.assembly import make_lookups
from bot.serving.pool import ImageServer
from tests.fakes.dataset import generate_dataset
from tests.fakes.nekos_api import FakeNekosAPI

from .common import (
    CatalogLists,
    PassThroughPool,
    build_catalog,
    configure_logging,
    figure,
    load_catalog_lists,
)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (file suffix, function) -> label, for the "where it goes" line; cumulative times nest.
_WHERE = (
    ("bot/replies.py", "random_request", "random_request"),
    ("bot/serving/pool.py", "should_defer", "should_defer"),
    ("bot/serving/pool.py", "take", "pool.take"),
    ("bot/replies.py", "_render_images", "render"),
    ("bot/embeds.py", "image_embed", "image_embed"),
    ("bot/embeds.py", "fit_message", "fit_message"),
    ("bot/views.py", "__init__", "another_button"),
    ("discord/ui/view.py", "__init__", "view"),
    ("bot/replies.py", "_link_buttons", "link_buttons"),
    ("bot/replies.py", "allows", "gating"),
)


class StockSource:
    """An in-memory ``/image/random``: hands out the preloaded images batch after batch."""

    def __init__(self, images: Sequence[Image]) -> None:
        self._images = list(images)
        self._next = 0
        self.calls = 0

    async def random_images(
        self,
        *,
        categories: Sequence[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        ratings: Sequence[Rating] | None = None,
        priority: Any,
    ) -> Page[Image]:
        self.calls += 1
        wanted = frozenset(name.lower() for name in categories)
        batch: list[Image] = []
        for _ in range(len(self._images)):
            image = self._images[self._next]
            self._next = (self._next + 1) % len(self._images)
            if wanted <= image.category_names:
                batch.append(image)
                if len(batch) >= limit:
                    break
        return Page(tuple(batch))


class ResponseBodySource:
    """The naive bot's client-side work per call: decode and parse a one-image response."""

    def __init__(self, bodies: Sequence[bytes]) -> None:
        self._bodies = list(bodies)
        self._next = 0
        self.calls = 0

    async def random_images(
        self,
        *,
        categories: Sequence[str] = (),
        limit: int = 1,
        expiry: int | None = None,
        ratings: Sequence[Rating] | None = None,
        priority: Any,
    ) -> Page[Image]:
        self.calls += 1
        body = self._bodies[self._next]
        self._next = (self._next + 1) % len(self._bodies)
        return parse_page(json.loads(body), parse_image_data, "GET /image/random")


@contextlib.asynccontextmanager
async def material(
    stock: int,
) -> AsyncIterator[tuple[tuple[Image, ...], tuple[bytes, ...], CatalogLists]]:
    """Read ``stock`` images (and their raw JSON) and the catalogue lists from an unlimited fake."""
    async with (
        FakeNekosAPI(generate_dataset(), rate_limit=None) as fake,
        aiohttp.ClientSession() as session,
    ):
        lists = await load_catalog_lists(fake, session)
        token = fake.add_token(["image:list", "api:ratelimit:disabled"])
        images: list[Image] = []
        bodies: list[bytes] = []
        async with NekosClient(fake.base_url, token, session=session) as api:
            offset = 0
            while len(images) < stock:
                body = await api.request(
                    Route("GET", "/image"), params={"limit": "25", "offset": str(offset)}
                )
                page = parse_page(body, parse_image_data, "GET /image")
                if not page.items:
                    break
                images.extend(page.items)
                # sfw only, so every naive command in an sfw channel has an image to show
                bodies.extend(
                    json.dumps({"data": [item], "success": True}).encode()
                    for item in body["data"]
                    if item.get("nsfw") == "sfw"
                )
                offset += len(page.items)
        yield tuple(images[:stock]), tuple(bodies), lists


def make_replies(server: ImageServer, lists: CatalogLists) -> Replies:
    """Replies wired like the bot's; the client is never called (link delivery, known names:
    artists given by id are named from the loaded artist list, as in the bot)."""
    api = NekosClient("http://127.0.0.1:9/api")
    lookups = make_lookups(api)
    lookups.prime(categories=lists.categories, artists=lists.artists, characters=lists.characters)
    return Replies(
        pool=server,
        lookups=lookups,
        catalog=build_catalog(lists),
        api=api,
        refusals=RefusalCounter(),
        delivery="link",
    )


async def stocked_pool(
    images: Sequence[Image], lists: CatalogLists
) -> tuple[Replies, ImagePool, StockSource]:
    """A pool holding ``images`` (up to 90% of its capacity), stocked through its own prefetch."""
    source = StockSource(images)
    # Prefetch knobs changed only to stock the pool here; the measured path does not use them.
    settings = PoolSettings(hot_threshold=0.5, prefetch_target=len(images))
    pool = ImagePool(
        source,
        interactive_priority=Priority.INTERACTIVE,
        background_priority=Priority.BACKGROUND,
        settings=settings,
        estimator=Pacer(),
    )
    replies = make_replies(pool, lists)
    # One ordinary command makes the no-category set hot; prefetch then tops it up.
    await replies.random(_request(replies, -1))
    while await pool.prefetch_once():
        pass
    return replies, pool, source


def _request(replies: Replies, number: int, guilds: int = 500) -> ImageRequest | Reply:
    guild = number % guilds
    return replies.random_request(
        user_id=1_000_000 + number,
        guild_id=10_000 + guild,
        channel_id=20_000 + guild,
        channel_max=Rating.SFW,
        requested=None,
        categories=None,
        count=1,
    )


async def one_command(replies: Replies, server: ImageServer, number: int) -> Reply:
    """What the cog does for ``/neko random`` once the channel's maximum is known."""
    request = _request(replies, number)
    if isinstance(request, ImageRequest):
        server.should_defer(request)
    return await replies.random(request)


async def timed(replies: Replies, server: ImageServer, iterations: int) -> list[float]:
    """Microseconds per command, one sample per iteration."""
    samples: list[float] = []
    for number in range(iterations):
        started = time.perf_counter_ns()
        reply = await one_command(replies, server, number)
        samples.append((time.perf_counter_ns() - started) / 1_000)
        if not reply.embeds:
            raise RuntimeError(f"iteration {number} got no image: the stock ran out")
    return samples


async def parts(images: Sequence[Image], lists: CatalogLists, iterations: int) -> dict[str, str]:
    """Median microseconds of each step timed alone, without the profiler's distortion."""
    replies, pool, _ = await stocked_pool(images, lists)
    requests = [_request(replies, number) for number in range(iterations)]
    ready = [r for r in requests if isinstance(r, ImageRequest)]

    def median_us(samples: list[int]) -> float:
        return statistics.median(samples) / 1_000

    request_ns, defer_ns, take_ns, embed_ns, fit_ns = [], [], [], [], []
    for number, request in enumerate(ready):
        started = time.perf_counter_ns()
        _request(replies, number)
        request_ns.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        pool.should_defer(request)
        defer_ns.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        result = await pool.take(request)
        take_ns.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        embeds = [render.image_embed(image) for image in result.images]
        embed_ns.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        render.fit_message(embeds)
        fit_ns.append(time.perf_counter_ns() - started)
    return {
        "random_request_us": f"{median_us(request_ns):.0f}",
        "should_defer_us": f"{median_us(defer_ns):.0f}",
        "pool_take_us": f"{median_us(take_ns):.0f}",
        "image_embed_us": f"{median_us(embed_ns):.0f}",
        "fit_message_us": f"{median_us(fit_ns):.0f}",
    }


def _short(file: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1]
    if file.startswith(_REPO):
        return os.path.relpath(file, _REPO)
    return file


def profile_lines(profiler: cProfile.Profile, iterations: int, top: int) -> tuple[str, list[str]]:
    """The "where it goes" summary and the top functions by cumulative time per command."""
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(
        profiler
    ).stats  # type: ignore[attr-defined]
    total = next(ct for (file, _, name), (_, _, _, ct, _) in raw.items() if name == "one_command")
    where: dict[str, float] = {}
    for (file, _, name), (_, _, _, ct, _) in raw.items():
        for suffix, function, label in _WHERE:
            if name == function and file.endswith(suffix):
                where[label] = where.get(label, 0.0) + ct
    summary = " ".join(
        f"{label}={100 * where[label] / total:.0f}%" for _, _, label in _WHERE if label in where
    )
    rows = sorted(
        (
            (ct, nc, file, line, name)
            for (file, line, name), (_, nc, _, ct, _) in raw.items()
            if name != "one_command" and "/bench/" not in file
        ),
        reverse=True,
    )
    lines = []
    for ct, nc, file, line, name in rows[:top]:
        location = name if file == "~" else f"{_short(file)}:{line}({name})"
        lines.append(
            f"{100 * ct / total:5.1f}% {1e6 * ct / iterations:7.1f}us/cmd "
            f"{nc / iterations:5.1f} calls/cmd  {location}"
        )
    return summary, lines


def _stats(samples: Sequence[float]) -> dict[str, object]:
    ordered = sorted(samples)
    return {
        "median_us": f"{statistics.median(ordered):.0f}",
        "p90_us": f"{ordered[int(0.9 * (len(ordered) - 1))]:.0f}",
        "commands_per_s_per_core": f"{1e6 / statistics.median(ordered):.0f}",
    }


async def run(args: argparse.Namespace) -> None:
    iterations = 300 if args.quick else args.iterations
    stock = 200 if args.quick else args.stock
    print(
        f"# cpu: {iterations} pooled /neko random served from a stock of {stock} images "
        f"(500 guilds, sfw channels, no categories, count 1); no upstream calls",
        flush=True,
    )
    async with material(stock) as (images, bodies, lists):
        replies, pool, source = await stocked_pool(images, lists)
        calls_before = source.calls
        samples = await timed(replies, pool, iterations)
        figure(
            "cpu",
            "pooled",
            {
                **_stats(samples),
                "iterations": iterations,
                "stock": len(images),
                "upstream_calls": source.calls - calls_before,
            },
        )

        naive_source = ResponseBodySource(bodies)
        naive = PassThroughPool(naive_source, None)
        naive_samples = await timed(make_replies(naive, lists), naive, iterations)
        figure(
            "cpu",
            "naive",
            {
                **_stats(naive_samples),
                "iterations": iterations,
                "note": "client-side decode+parse of a 1-image response, HTTP and pacing excluded",
            },
        )

        step_medians = await parts(images, lists, iterations)
        total = statistics.median(samples)
        accounted = sum(float(v) for v in step_medians.values())
        figure(
            "cpu",
            "parts",
            {**step_medians, "rest_us": f"{max(0.0, total - accounted):.0f}"},
        )

        replies, pool, source = await stocked_pool(images, lists)
        profiler = cProfile.Profile()
        profiler.enable()
        for number in range(iterations):
            await one_command(replies, pool, number)
        profiler.disable()
        summary, rows = profile_lines(profiler, iterations, args.top)
        print(f"cpu where: {summary}", flush=True)
        for row in rows:
            print(f"cpu profile: {row}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CPU benchmark and print its figure lines."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a one-second smoke run")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--stock", type=int, default=1000, help="images in the pool (<=1800)")
    parser.add_argument("--top", type=int, default=15, help="profile rows to print")
    parser.add_argument("--verbose", action="store_true", help="show the bot's warnings")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
