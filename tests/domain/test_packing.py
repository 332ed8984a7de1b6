"""Packing a night's tenant-days into runs (`recordings/packing.py`)."""

import pytest

from recordings.packing import MAX_STEPPED_OVER, Pack, PackLimits, pack_tenant_days


def _ranges(packs: list[Pack]) -> list[tuple[str, ...]]:
    return [pack.tenant_ids for pack in packs]


def test_small_tenants_share_runs_up_to_the_tenant_limit() -> None:
    order = [f"t{i}" for i in range(7)]
    packs = pack_tenant_days(order, set(order), {}, PackLimits(max_tenants=3))
    assert _ranges(packs) == [("t0", "t1", "t2"), ("t3", "t4", "t5"), ("t6",)]


def test_a_pack_closes_before_it_would_exceed_the_audio_limit() -> None:
    order = ["a", "b", "c", "d"]
    audio = {"a": 40.0, "b": 50.0, "c": 10.0, "d": 100.0}
    packs = pack_tenant_days(order, set(order), audio, PackLimits(max_audio_seconds=101))
    assert _ranges(packs) == [("a", "b", "c"), ("d",)]
    assert [p.audio_seconds for p in packs] == [100.0, 100.0]


def test_a_heavy_tenant_runs_alone_and_the_pack_steps_over_it() -> None:
    order = ["a", "heavy", "b", "c"]
    packs = pack_tenant_days(order, set(order), {"heavy": 500.0}, PackLimits(max_audio_seconds=500))
    assert _ranges(packs) == [("heavy",), ("a", "b", "c")]
    assert [p.single_tenant for p in packs] == [True, False]
    assert packs[1].stepped_over == ("heavy",)  # inside a..c, archived by its own run


def test_a_tenant_without_a_run_is_stepped_over_not_archived() -> None:
    """A run's partitions are every tenant between its ends: a disabled (or unselected) tenant
    inside the range is named, so the run skips it; one after the last member is not inside."""
    order = ["off-1", "a", "b", "off-2", "c", "d", "off-3"]
    packs = pack_tenant_days(order, {"a", "b", "c", "d"}, {})
    assert _ranges(packs) == [("a", "b", "c", "d")]
    assert packs[0].stepped_over == ("off-2",)


def test_a_pack_closes_rather_than_step_over_too_many() -> None:
    order = ["a", *[f"off-{i:02d}" for i in range(MAX_STEPPED_OVER + 1)], "b"]
    packs = pack_tenant_days(order, {"a", "b"}, {})
    assert _ranges(packs) == [("a",), ("b",)]
    assert all(not p.stepped_over for p in packs)


def test_every_selected_tenant_is_in_exactly_one_pack_and_ranges_are_exact() -> None:
    order = [f"t{i:03d}" for i in range(500)]
    selected = {t for i, t in enumerate(order) if i % 7}
    audio = {t: float(i % 13) * 60 for i, t in enumerate(order)}
    audio["t100"] = audio["t333"] = 10_000.0  # heavy
    limits = PackLimits(max_tenants=50, max_audio_seconds=3000)
    packs = pack_tenant_days(order, selected, audio, limits)
    flat = sorted(t for p in packs for t in p.tenant_ids)
    assert flat == sorted(selected)
    for pack in packs:
        first, last = order.index(pack.first), order.index(pack.last)
        inside = order[first : last + 1]
        # The range is exactly the members and what the pack steps over.
        assert sorted(inside) == sorted([*pack.tenant_ids, *pack.stepped_over])
        assert [t for t in inside if t not in pack.stepped_over] == list(pack.tenant_ids)
        assert len(pack.tenant_ids) <= 50 and len(pack.stepped_over) <= MAX_STEPPED_OVER
        assert pack.single_tenant or pack.audio_seconds <= 3000
    assert {p.first for p in packs if p.single_tenant and p.audio_seconds >= 3000} == {
        "t100",
        "t333",
    }


def test_a_selected_tenant_missing_from_the_partitions_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not in the partition order: \\['new'\\]"):
        pack_tenant_days(["a"], {"a", "new"}, {})


@pytest.mark.parametrize("limits", [{"max_tenants": 0}, {"max_audio_seconds": 0}])
def test_limits_must_allow_a_run(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PackLimits(**limits)  # type: ignore[arg-type]
