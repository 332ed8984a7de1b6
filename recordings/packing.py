"""Packing a night's tenant-days into runs by their expected work.

A run has a fixed cost (a run worker, code loading, run creation and its submission) that a
tenant-day with no or little audio cannot carry: on a platform most tenants record a handful of
calls a day. So the nightly schedule packs many small tenant-days into one run and gives a heavy
one a run of its own. What a pack may hold is bounded twice: by audio (so a run's length, and
what a failure's retry redoes at worst, stay bounded) and by tenants (so a run's partitions, its
events and its memory stay bounded).

A run covers a *range* of partitions (Dagster's `asset_partition_range_start`/`_end` tags): for
the tenant x hour partitions that is a rectangle, the tenants between two tenants in the order
of the `tenants` dynamic partitions times the day's 24 hours. So a pack is a stretch of that
order. Tenants inside the stretch that the pack must not archive (a heavy one with its own run,
one without a run that night) are *stepped over*: the run's tags name them and the asset skips
them. Without that, each would end the pack before it, and a few hundred heavy tenants spread
through the order would split the small ones into hundreds of extra runs.
"""

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

DEFAULT_MAX_TENANTS_PER_RUN = 200
"""At most this many tenant-days share a run (4,800 hour partitions)."""

MAX_STEPPED_OVER = 20
"""At most this many tenants inside a pack's range are stepped over (they are named in a run
tag; a longer list ends the pack instead)."""

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
    """A stretch of the tenant order whose day one run archives: `tenant_ids` (in order),
    except the tenants it steps over (`stepped_over`, inside the stretch)."""

    tenant_ids: tuple[str, ...]
    audio_seconds: float
    stepped_over: tuple[str, ...] = ()

    @property
    def first(self) -> str:
        return self.tenant_ids[0]

    @property
    def last(self) -> str:
        return self.tenant_ids[-1]

    @property
    def single_tenant(self) -> bool:
        """One tenant alone (a heavy one, or a small one with no neighbour to share with): its
        run comes under the per-tenant run limit."""
        return len(self.tenant_ids) == 1


def pack_tenant_days(
    partition_order: Sequence[str],
    selected: Set[str],
    expected_audio_seconds: Mapping[str, float],
    limits: PackLimits = PackLimits(),
) -> list[Pack]:
    """The runs for the `selected` tenants' day.

    `partition_order` is every tenant partition in Dagster's order (selected tenants missing
    from it are the caller's to register first: they would get no range). A tenant whose
    expected audio reaches `limits.max_audio_seconds` gets a run of its own; the others are
    packed greedily in order, a pack closing when the next tenant would take it over either
    limit or over `MAX_STEPPED_OVER` tenants stepped over. Heavy tenants' runs come first, then
    the packs, each list in partition order.
    """
    missing = selected - set(partition_order)
    if missing:
        raise ValueError(f"tenants not in the partition order: {sorted(missing)[:5]}")
    heavy: list[Pack] = []
    packs: list[Pack] = []
    members: list[str] = []
    stepped: list[str] = []  # inside the current pack so far
    pending: list[str] = []  # after its last member: stepped over only if another joins
    audio_total = 0.0

    def close() -> None:
        nonlocal members, stepped, pending, audio_total
        if members:
            packs.append(Pack(tuple(members), audio_total, tuple(stepped)))
        members, stepped, pending, audio_total = [], [], [], 0.0

    for tenant_id in partition_order:
        audio = max(0.0, expected_audio_seconds.get(tenant_id, 0.0))
        if tenant_id in selected and audio >= limits.max_audio_seconds:
            heavy.append(Pack((tenant_id,), audio))
        if tenant_id not in selected or audio >= limits.max_audio_seconds:
            if members:
                pending.append(tenant_id)
            continue
        if (
            len(members) >= limits.max_tenants
            or audio_total + audio > limits.max_audio_seconds
            or len(stepped) + len(pending) > MAX_STEPPED_OVER
        ):
            close()
        stepped += pending
        pending = []
        members.append(tenant_id)
        audio_total += audio
    close()
    return heavy + packs
