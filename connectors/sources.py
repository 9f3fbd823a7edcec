"""Every source Guardline reads, by name: the one list the CLI, the DAGs and the
tests iterate over."""

from __future__ import annotations

from connectors import civil_affairs, emergency_management, health_insurance, human_resources, registry
from connectors.spec import Source
from guardline.errors import GuardlineError

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
# Each department as one source: a file source, or the 人社 exchange (its first table
# stands for it), in the order a night reads them.
_BY_DEPARTMENT: dict[str, Source] = {s.name: s for s in (*FILE_SOURCES, human_resources.EMPLOYMENT)}
DEPARTMENTS: tuple[str, ...] = tuple(_BY_DEPARTMENT)


def department(name: str) -> Source:
    """A department by name."""
    try:
        return _BY_DEPARTMENT[name]
    except KeyError:
        raise GuardlineError(f"no source named {name!r}; the sources are {', '.join(DEPARTMENTS)}") from None
