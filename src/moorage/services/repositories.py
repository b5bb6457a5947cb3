"""Repository lookup, create-on-push and the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.db.engine import Database
from moorage.db.models import Repository, RepositoryState, Visibility
from moorage.db.queries.repositories import RepositoryQueries
from moorage.errors import NameUnknown
from moorage.oci.reference import split_repository
from moorage.services.repo_cache import RepoCache


@dataclass(frozen=True, slots=True)
class RepoRef:
    """A repository as services pass it around (detached from any session)."""

    id: int
    namespace: str
    name: str
    state: RepositoryState
    visibility: Visibility

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, repo: Repository) -> RepoRef:
        return cls(
            id=repo.id,
            namespace=repo.namespace,
            name=repo.name,
            state=RepositoryState(repo.state),
            visibility=Visibility(repo.visibility),
        )


class RepositoryService:
    def __init__(self, db: Database, cache: RepoCache | None = None) -> None:
        self.db = db
        self.cache = cache or RepoCache()

    async def find(self, full_name: str) -> RepoRef | None:
        cached = self.cache.get(full_name)
        if cached is not None:
            return cached
        namespace, name = split_repository(full_name)
        async with self.db.transaction(readonly=True) as session:
            repo = await RepositoryQueries(session).get(namespace, name)
        if repo is None:
            return None
        ref = RepoRef.of(repo)
        self.cache.put(ref)
        return ref

    async def get(self, full_name: str) -> RepoRef:
        repo = await self.find(full_name)
        if repo is None:
            raise NameUnknown(f"repository {full_name} not found")
        return repo

    async def get_or_create(self, full_name: str) -> RepoRef:
        namespace, name = split_repository(full_name)
        existing = await self.find(full_name)
        if existing is not None:
            return existing
        async with self.db.transaction() as session:
            repo, _ = await RepositoryQueries(session).get_or_create(namespace, name)
            return RepoRef.of(repo)

    async def catalog(self, last: str | None, limit: int) -> list[str]:
        async with self.db.transaction(readonly=True) as session:
            rows = await RepositoryQueries(session).catalog(last, limit)
        return [f"{ns}/{name}" for ns, name in rows]
