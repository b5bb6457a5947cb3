"""Whether something that forbids deleting a robot (a repository mirror) uses it.

This is the hook the robot endpoints pass to ``AccountService.delete_robot``. It is looked up
at call time (``robot_usage.robot_in_use``), so further users of robots (e.g. organization
mirrors) can be added here without touching the robot endpoints.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from moorage.db.queries.mirrors import MirrorQueries


async def robot_in_use(session: AsyncSession, robot_id: int) -> bool:
    """True when a repository mirror configuration names the robot (Quay's robot_has_mirror).

    Repository mirror configurations are the only users checked today.
    """
    return await MirrorQueries(session).robot_in_use(robot_id)
