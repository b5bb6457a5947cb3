"""Robot accounts of a user's or an organization's namespace (/api/v1 robot endpoints)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.engine import Database
from moorage.db.models import Account, AccountKind
from moorage.db.queries.accounts import AccountQueries
from moorage.errors import NotFound
from moorage.services import robot_usage
from moorage.services.accounts import AccountService, CreatedSecret
from moorage.services.audit import Actor


async def _in_use(session: AsyncSession, robot_id: int) -> bool:
    # Looked up at call time so that the mirror feature (or a test) can replace the hook.
    return await robot_usage.robot_in_use(session, robot_id)


class RobotService:
    """Robots live in a namespace whose owner has ``kind`` (USER for /user/robots, else ORG)."""

    def __init__(self, db: Database, accounts: AccountService) -> None:
        self.db = db
        self.accounts = accounts

    async def _require_owner(self, namespace: str, kind: AccountKind) -> None:
        async with self.db.transaction(readonly=True) as session:
            owner = await AccountQueries(session).by_name(namespace)
        if owner is None or owner.kind != kind:
            raise NotFound("Not Found")

    async def create(
        self,
        namespace: str,
        kind: AccountKind,
        short: str,
        description: str | None,
        actor: Actor,
    ) -> CreatedSecret:
        await self._require_owner(namespace, kind)
        return await self.accounts.create_robot(namespace, short, description, actor)

    async def get(self, namespace: str, kind: AccountKind, short: str) -> Account:
        await self._require_owner(namespace, kind)
        return await self.accounts.get_robot(f"{namespace}+{short}")

    async def list(self, namespace: str, kind: AccountKind) -> Sequence[Account]:
        await self._require_owner(namespace, kind)
        return await self.accounts.list_robots(namespace)

    async def delete(self, namespace: str, kind: AccountKind, short: str, actor: Actor) -> None:
        """Refused (InvalidRequest "Robot is being used by a mirror") while a mirror uses it."""
        await self._require_owner(namespace, kind)
        await self.accounts.delete_robot(f"{namespace}+{short}", actor, _in_use)

    async def regenerate(
        self, namespace: str, kind: AccountKind, short: str, actor: Actor
    ) -> CreatedSecret:
        await self._require_owner(namespace, kind)
        return await self.accounts.regenerate_robot_token(f"{namespace}+{short}", actor)
