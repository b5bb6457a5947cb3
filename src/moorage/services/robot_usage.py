"""Whether something that forbids deleting a robot (a repository mirror) uses it.

This is the hook the robot endpoints pass to ``AccountService.delete_robot``. It is looked up
at call time (``robot_usage.robot_in_use``), so the mirror feature can fill in its body without
touching the robot endpoints.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def robot_in_use(session: AsyncSession, robot_id: int) -> bool:
    """True when a mirror configuration names the robot (Quay's ``robot_has_mirror``).

    Currently always False: mirror configurations do not exist yet. The repository-mirror
    feature replaces this body with a query on its configuration table, in ``session``.
    """
    del session, robot_id
    return False
