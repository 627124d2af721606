"""``python -m bot check``: validate settings, the store and the Nekos API, then exit."""

from __future__ import annotations

from dataclasses import dataclass

from .budget import describe_budget, open_budget
from .config import Settings
from .nekos import NekosApi, NekosError, Unauthorized
from .nekos.capabilities import CAPABILITIES
from .nekos.models import Rating
from .serving.assembly import content_policy, make_api
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
    """Which version the bot talks to and what it can do, proven by one request; the budget."""
    # Through the running bot's request budget, so a check never earns it a 429.
    async with open_budget(settings) as budget, budget.session() as session:
        client = make_api(settings, session=session, budget=budget)
        results = await _use_api(settings, client)
        state = client.pacer.state()
        results.append(
            CheckResult(
                "request budget",
                state.budget_ok,
                f"{describe_budget(state)} ({budget.location}; key {budget.key})",
            )
        )
    return results


async def _use_api(settings: Settings, client: NekosApi) -> list[CheckResult]:
    results = []
    base_url = settings.nekos_api_base_url
    capabilities = client.capabilities
    try:
        async with client:
            # v1: GET /; v4 has none, so its api_info() is one GET /images?limit=1.
            info = await client.api_info()
            server = (
                f" (server version {info.version})"
                if capabilities.has_api_info and info.version
                else ""
            )
            results.append(
                CheckResult(
                    "nekos api",
                    True,
                    f"{capabilities.version} at {base_url}{server} — {capabilities.summary()}",
                )
            )
            details = client.token_details
            if details is not None:
                scopes = ", ".join(details.scopes) or "no scopes"
                results.append(CheckResult("nekos api token", True, f"valid; scopes: {scopes}"))
            elif settings.nekos_api_token is not None and not capabilities.uses_token:
                results.append(
                    CheckResult(
                        "nekos api token",
                        True,
                        f"set but not sent: {capabilities.version} has no authentication "
                        "(remove NEKOS_API_TOKEN)",
                    )
                )
    except Unauthorized:
        results.append(
            CheckResult("nekos api token", False, "rejected by the API: fix or remove it")
        )
    except NekosError as exc:
        results.append(
            CheckResult(
                "nekos api",
                False,
                f"unreachable at {base_url} ({capabilities.version}): {exc}",
            )
        )
    return results


def _check_content(settings: Settings) -> CheckResult:
    """What the operator's content rules allow from this API version (ages known or not)."""
    capabilities = CAPABILITIES[settings.nekos_api_version]
    policy = content_policy(settings)
    if capabilities.has_characters:
        detail = "characters' ages known: minors are never shown above sfw"
    elif policy.ceiling(ages_known=False) is Rating.SFW:
        detail = (
            f"{capabilities.version} has no characters' ages: only sfw images are shown, "
            "everywhere (NEKOS_V4_ALLOW_ABOVE_SFW=true lets age-restricted channels show more)"
        )
    else:
        detail = (
            f"{capabilities.version} has no characters' ages: above sfw is allowed by the "
            f"operator, except images with any of {len(policy.youth_tags)} youth-describing "
            "tags (a heuristic, not a guarantee)"
        )
    return CheckResult("content", True, detail)


async def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, in order; each says what it found in one line."""
    results = [
        CheckResult(
            "discord token",
            settings.discord_token is not None,
            "set" if settings.discord_token is not None else "DISCORD_TOKEN is not set",
        ),
        await _check_store(settings),
        _check_content(settings),
    ]
    results.extend(await _check_api(settings))
    return results
