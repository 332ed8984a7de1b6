"""`recordings materialize` and `recordings retention`: the pipeline's jobs run through Dagster,
as the schedules run them. Dagster is imported only when one of them runs."""

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import click

from recordings_cli.common import db_session, fail, parse_day
from recordings_cli.project import dagster_home

if TYPE_CHECKING:
    from recordings_dagster.execution import TenantDayOutcome


@click.command()
@click.option("--today", help="Apply the rule as of this UTC date, YYYY-MM-DD [default: today].")
def retention(today: str | None) -> None:
    """Delete archives outside each tenant's retention, through Dagster like the schedule."""
    import dagster as dg

    from recordings_dagster.execution import run_retention

    if today:
        try:
            as_of = date.fromisoformat(today)
        except ValueError:
            raise fail(f"--today {today!r} is not a date; use YYYY-MM-DD") from None
    else:
        as_of = datetime.now(UTC).date()
    dagster_home()
    with dg.DagsterInstance.get() as instance:
        outcome = run_retention(instance, as_of)
    if not outcome.success:
        raise fail(
            f"the retention run {outcome.run_id} failed: {outcome.failure}; it is safe to run "
            "the command again"
        )
    summary = outcome.summary
    click.echo(
        f"retention as of {as_of}: {summary.get('deleted', 0)} archive(s) deleted, "
        f"{summary.get('kept', 0)} kept, {summary.get('held_by_legal_hold', 0)} held by a legal "
        f"hold (run {outcome.run_id[:8]})"
    )


@click.command()
@click.option("--day", help="UTC day, YYYY-MM-DD [default: yesterday].")
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="Tenant to materialize (repeatable) [default: every enabled tenant].",
)
def materialize(day: str | None, tenants: tuple[str, ...]) -> None:
    """Archive a UTC day through Dagster, tenant-days packed into runs like the schedule."""
    run_materialize(parse_day(day), tenants)


def run_materialize(day: date, tenants: tuple[str, ...]) -> None:
    """Archive `day` for `tenants` (every enabled tenant if none), reporting each tenant-day;
    any failed run fails the command (`materialize` and `demo`)."""
    from recordings.catalog import enabled_tenant_ids, expected_audio_seconds, is_enabled

    dagster_home()
    with db_session() as session:
        enabled = enabled_tenant_ids(session)
        if tenants:
            for tenant_id in tenants:
                if not is_enabled(session, tenant_id):
                    raise fail(
                        f"tenant {tenant_id!r} does not exist or has daily recordings disabled; "
                        f"enable it with `recordings tenant set {tenant_id} --enable`"
                    )
            selected = list(tenants)
        else:
            selected = enabled
        start = datetime.combine(day, time(), UTC)
        expected = expected_audio_seconds(session, selected, start, start + timedelta(days=1))
    if not selected:
        raise fail("no tenant has daily recordings enabled; nothing to materialize")

    import dagster as dg

    from recordings_dagster.execution import materialize_day
    from recordings_dagster.resources import archive_build_from_environment

    click.echo(f"materializing {day} for {len(selected)} tenant(s): {', '.join(selected)}")

    def progress(index: int, total: int, outcome: "TenantDayOutcome") -> None:
        status = "ok" if outcome.success else "FAILED"
        click.echo(
            f"  [{index}/{total}] {outcome.tenant_id}: {status}, {outcome.hours_archived}/24 hours "
            f"archived (run {outcome.run_id[:8]})"
        )
        if outcome.failure:
            click.echo(f"      {outcome.failure}", err=True)

    with dg.DagsterInstance.get() as instance:
        outcomes = materialize_day(
            instance,
            day,
            selected,
            expected_audio_seconds=expected,
            limits=archive_build_from_environment().pack_limits(),
            on_progress=progress,
        )
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise fail(
            f"{len(failed)} tenant-day run(s) failed: "
            + ", ".join(f"{o.tenant_id} (run {o.run_id})" for o in failed)
            + "; see the runs in the Dagster UI, fix the cause and run the command again"
        )
    click.echo("all tenant-days archived")
