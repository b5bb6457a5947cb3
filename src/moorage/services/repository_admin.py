"""Repository management for /api/v1: create, list, get, delete, visibility, state."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from moorage.auth.permissions import Principal
from moorage.db.engine import Database
from moorage.db.models import AccountKind, Repository, RepositoryState, Visibility
from moorage.db.queries.accounts import AccountQueries
from moorage.db.queries.repositories import RepositoryQueries
from moorage.db.queries.repository_admin import RepositoryAdminQueries
from moorage.errors import InvalidRequest, NotFound
from moorage.oci.reference import split_repository
from moorage.services.audit import Actor, record
from moorage.services.repo_cache import RepoCache

PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class RepoPage:
    repositories: Sequence[Repository]
    next_page: str | None


def encode_page(after_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after_id}).encode()).decode()


def decode_page(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["after"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest("Invalid next_page token") from exc


class RepositoryAdminService:
    def __init__(self, db: Database, repo_cache: RepoCache | None = None) -> None:
        self.db = db
        self.repo_cache = repo_cache

    async def create(
        self,
        namespace: str,
        name: str,
        visibility: Visibility,
        description: str | None,
        actor: Actor,
    ) -> Repository:
        split_repository(f"{namespace}/{name}")
        async with self.db.transaction() as session:
            owner = await AccountQueries(session).by_name(namespace)
            if owner is None or owner.kind == AccountKind.ROBOT:
                raise NotFound("Not Found")
            queries = RepositoryQueries(session)
            if await queries.get(namespace, name) is not None:
                raise InvalidRequest("Repository already exists")
            repo, _ = await queries.get_or_create(namespace, name, visibility)
            if description:
                await RepositoryAdminQueries(session).set_description(repo.id, description)
                repo.description = description
            record(
                session,
                "create_repo",
                actor,
                namespace=namespace,
                repository=name,
                metadata={"visibility": visibility.value},
            )
            return repo

    async def get(self, namespace: str, name: str) -> Repository:
        async with self.db.transaction(readonly=True) as session:
            repo = await RepositoryQueries(session).get(namespace, name)
        if repo is None:
            raise NotFound("Not Found")
        return repo

    async def list(
        self, principal: Principal, namespace: str | None, public: bool, next_page: str | None
    ) -> RepoPage:
        after = decode_page(next_page)
        async with self.db.transaction(readonly=True) as session:
            rows = await RepositoryAdminQueries(session).visible(
                account_id=principal.account_id,
                username=principal.name if principal.kind == "user" else None,
                superuser=principal.superuser,
                namespace=namespace,
                public=public,
                after_id=after,
                limit=PAGE_SIZE + 1,
            )
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        return RepoPage(rows, encode_page(rows[-1].id) if more else None)

    async def delete(self, namespace: str, name: str, actor: Actor) -> None:
        async with self.db.transaction() as session:
            queries = RepositoryQueries(session)
            repo = await queries.get(namespace, name)
            if repo is None:
                raise NotFound("Not Found")
            await queries.delete(repo.id)
            record(session, "delete_repo", actor, namespace=namespace, repository=name)
        if self.repo_cache is not None:
            self.repo_cache.forget(f"{namespace}/{name}")

    async def set_visibility(
        self, namespace: str, name: str, visibility: Visibility, actor: Actor
    ) -> None:
        async with self.db.transaction() as session:
            repo = await RepositoryQueries(session).get(namespace, name)
            if repo is None:
                raise NotFound("Not Found")
            await RepositoryAdminQueries(session).set_visibility(repo.id, visibility)
            record(
                session,
                "change_repo_visibility",
                actor,
                namespace=namespace,
                repository=name,
                metadata={"visibility": visibility.value},
            )

    async def set_state(
        self, namespace: str, name: str, state: RepositoryState, actor: Actor
    ) -> None:
        async with self.db.transaction() as session:
            repo = await RepositoryQueries(session).get(namespace, name)
            if repo is None:
                raise NotFound("Not Found")
            await RepositoryAdminQueries(session).set_state(repo.id, int(state))
            record(
                session,
                "change_repo_state",
                actor,
                namespace=namespace,
                repository=name,
                metadata={"state_changed": state.name},
            )
