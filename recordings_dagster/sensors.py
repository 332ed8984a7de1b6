"""Keep the `tenants` dynamic partitions in step with the application database."""

import dagster as dg

from recordings.catalog import enabled_tenant_ids, tenant_ids
from recordings_dagster.partitions import tenant_partitions
from recordings_dagster.resources import DatabaseResource

TENANTS_PARTITION_NAME = tenant_partitions.name or "tenants"


@dg.sensor(
    name="tenant_partitions_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Adds a partition for every tenant with the feature enabled; removes partitions of "
        "tenants deleted from the database. Disabled tenants keep their partitions (history)."
    ),
)
def tenant_partitions_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    with database.session() as session:
        enabled = enabled_tenant_ids(session)
        existing_tenants = set(tenant_ids(session))
    known = set(context.instance.get_dynamic_partitions(TENANTS_PARTITION_NAME))
    to_add = sorted(set(enabled) - known)
    to_delete = sorted(known - existing_tenants)
    if not to_add and not to_delete:
        return dg.SkipReason(f"{len(known)} tenant partitions already match the database")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if to_add:
        requests.append(tenant_partitions.build_add_request(to_add))
    if to_delete:
        requests.append(tenant_partitions.build_delete_request(to_delete))
    context.log.info(f"tenant partitions: adding {to_add}, removing {to_delete}")
    return dg.SensorResult(dynamic_partitions_requests=requests)
