"""Packing a night's tenant-days into runs by their expected work.

A run has a fixed cost (a run worker, code loading, run creation and its events, about 3 CPU-s)
that a tenant-day with no or little audio cannot carry: on a platform most tenants record a
handful of calls a day. So the nightly schedule packs many small tenant-days into one run and
gives a heavy one a run of its own. What a pack may hold is bounded twice: by audio (so a run's
length, and what a failure's retry redoes at worst, stay bounded) and by tenants (so a run's
planned partitions, its events and its memory stay bounded).

A run covers a *range* of partitions (Dagster's `asset_partition_range_start`/`_end` tags): for
the tenant x hour partitions that is a rectangle, the tenants between two tenants in the order
of the `tenants` dynamic partitions times the day's 24 hours. So a pack is a run of consecutive
tenants in that order, and a tenant that gets no run that night (feature off, or deleted) ends
the pack before it: it is never inside a run's range, so it is never planned, never skipped and
never reported failed.
"""

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

DEFAULT_MAX_TENANTS_PER_RUN = 200
"""At most this many tenant-days share a run (4,800 hour partitions)."""

DEFAULT_MAX_AUDIO_SECONDS_PER_RUN = 48 * 3600.0
"""At most this much expected audio shares a run (about 20 minutes of encoding on a 2-core
worker, at 75x realtime per core); a tenant-day with more runs alone. Fewer, longer runs make
the tick shorter (each run costs its submission); more, shorter ones spread a night more evenly
over many workers (docs/SCALE.md)."""


@dataclass(frozen=True)
class PackLimits:
    max_tenants: int = DEFAULT_MAX_TENANTS_PER_RUN
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS_PER_RUN

    def __post_init__(self) -> None:
        if self.max_tenants < 1:
            raise ValueError(f"max_tenants must be at least 1, not {self.max_tenants}")
        if self.max_audio_seconds <= 0:
            raise ValueError(f"max_audio_seconds must be positive, not {self.max_audio_seconds}")


@dataclass(frozen=True)
class Pack:
    """Consecutive tenants (in partition order) whose day one run archives."""

    tenant_ids: tuple[str, ...]
    audio_seconds: float

    @property
    def first(self) -> str:
        return self.tenant_ids[0]

    @property
    def last(self) -> str:
        return self.tenant_ids[-1]

    @property
    def single_tenant(self) -> bool:
        """One tenant alone (a heavy one, or one between tenants without a run): its run comes
        under the per-tenant run limit."""
        return len(self.tenant_ids) == 1


def pack_tenant_days(
    partition_order: Sequence[str],
    selected: Set[str],
    expected_audio_seconds: Mapping[str, float],
    limits: PackLimits = PackLimits(),
) -> list[Pack]:
    """The runs for the `selected` tenants' day, in partition order.

    `partition_order` is every tenant partition in Dagster's order (selected tenants missing
    from it are the caller's to register first: they would get no range). A tenant whose
    expected audio reaches `limits.max_audio_seconds` gets a run of its own; the others are
    packed greedily, a pack ending at the first tenant that is not selected, that is heavy, or
    that would take it over either limit.
    """
    missing = selected - set(partition_order)
    if missing:
        raise ValueError(f"tenants not in the partition order: {sorted(missing)[:5]}")
    packs: list[Pack] = []
    current: list[str] = []
    current_audio = 0.0

    def close() -> None:
        nonlocal current, current_audio
        if current:
            packs.append(Pack(tuple(current), current_audio))
        current, current_audio = [], 0.0

    for tenant_id in partition_order:
        if tenant_id not in selected:
            close()
            continue
        audio = max(0.0, expected_audio_seconds.get(tenant_id, 0.0))
        if audio >= limits.max_audio_seconds:
            close()
            packs.append(Pack((tenant_id,), audio))
            continue
        if len(current) >= limits.max_tenants or current_audio + audio > limits.max_audio_seconds:
            close()
        current.append(tenant_id)
        current_audio += audio
    close()
    return packs
