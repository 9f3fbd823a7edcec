"""Every source Guardline reads, by name: the one list the CLI, the DAGs and the
tests iterate over."""

from __future__ import annotations

from connectors import civil_affairs, emergency_management, health_insurance, human_resources, registry
from connectors.spec import Source

FILE_SOURCES: tuple[Source, ...] = (
    registry.SOURCE,
    civil_affairs.SOURCE,
    health_insurance.SOURCE,
    emergency_management.SOURCE,
)
DATABASE_SOURCES: tuple[Source, ...] = human_resources.TABLES
ALL: tuple[Source, ...] = FILE_SOURCES + DATABASE_SOURCES
BY_STAGE_NAME: dict[str, Source] = {s.stage_name: s for s in ALL}
REGISTER: Source = registry.SOURCE  # what every other source's records are linked to
# The stage names of the records linked to the register, in a fixed order.
RECORD_STAGES: tuple[str, ...] = tuple(s.stage_name for s in ALL if s is not REGISTER)
DEPARTMENTS: tuple[str, ...] = (
    "registry",
    "civil_affairs",
    "health_insurance",
    "emergency_management",
    "human_resources",
)
