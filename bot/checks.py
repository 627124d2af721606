"""``python -m bot check``: validate settings, the store and the Nekos API, then exit."""

from __future__ import annotations

from dataclasses import dataclass

from .budget import describe_budget, open_budget
from .config import Settings
from .nekos import NekosClient, NekosError, Unauthorized
from .store import StoreError, open_store

__all__ = ["CheckResult", "run_checks"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


async def _check_store(settings: Settings) -> CheckResult:
    try:
        store = open_store(settings.database_url)
        async with store:
            health = await store.health_check()
    except (StoreError, ValueError, OSError) as exc:
        return CheckResult("store", False, str(exc))
    return CheckResult("store", health.ok, health.detail)


async def _check_api(settings: Settings) -> list[CheckResult]:
    results = []
    # Through the running bot's request budget, so a check never earns it a 429.
    async with open_budget(settings) as budget, budget.session() as session:
        client = budget.client(settings, session)
        results.extend(await _use_api(settings, client))
        state = client.pacer.state()
        results.append(
            CheckResult(
                "request budget",
                state.budget_ok,
                f"{describe_budget(state)} ({budget.location}; key {budget.key})",
            )
        )
    return results


async def _use_api(settings: Settings, client: NekosClient) -> list[CheckResult]:
    results = []
    try:
        async with client:
            info = await client.api_info()
            results.append(
                CheckResult(
                    "nekos api",
                    True,
                    f"reachable at {settings.nekos_api_base_url} (version {info.version or '?'})",
                )
            )
            details = client.token_details
            if details is not None:
                scopes = ", ".join(details.scopes) or "no scopes"
                results.append(CheckResult("nekos api token", True, f"valid; scopes: {scopes}"))
    except Unauthorized:
        results.append(
            CheckResult("nekos api token", False, "rejected by the API: fix or remove it")
        )
    except NekosError as exc:
        results.append(
            CheckResult("nekos api", False, f"unreachable at {settings.nekos_api_base_url}: {exc}")
        )
    return results


async def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, in order; each says what it found in one line."""
    results = [
        CheckResult(
            "discord token",
            settings.discord_token is not None,
            "set" if settings.discord_token is not None else "DISCORD_TOKEN is not set",
        ),
        await _check_store(settings),
    ]
    results.extend(await _check_api(settings))
    return results
