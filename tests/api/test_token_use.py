"""An access token's last use is recorded without a write per request (at most one a minute)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from moorage.auth.passwords import token_hash
from moorage.db.models import AccessToken
from moorage.services.accounts import TOKEN_TOUCH_SECONDS
from tests.api.conftest import World

pytestmark = pytest.mark.anyio


async def test_last_use_is_recorded_once_a_minute(world: World) -> None:
    mine = AccessToken.token_hash == token_hash(world.tokens["alice"])

    async def last_used() -> dt.datetime | None:
        async with world.db.transaction(readonly=True) as session:
            return await session.scalar(select(AccessToken.last_used_at).where(mine))

    async def set_last_used(value: dt.datetime | None) -> None:
        async with world.db.transaction() as session:
            await session.execute(update(AccessToken).where(mine).values(last_used_at=value))

    async def use() -> None:
        response = await world.client.get("/api/v1/user/", headers=world.auth("alice"))
        assert response.status_code == 200, response.text

    await set_last_used(None)
    for _ in range(3):
        await use()
    first = await last_used()
    assert first is not None
    assert dt.datetime.now(dt.UTC) - first < dt.timedelta(seconds=30)
    await use()
    assert await last_used() == first  # within the minute: not written again

    older = first - dt.timedelta(seconds=TOKEN_TOUCH_SECONDS + 1)
    await set_last_used(older)
    await use()
    renewed = await last_used()
    assert renewed is not None
    assert renewed > older + dt.timedelta(seconds=TOKEN_TOUCH_SECONDS)
