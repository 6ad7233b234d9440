"""Versioned table schemas: create tables at the current version and upgrade older ones in place.

The version is the Delta table property `smb_fanout.schema_version`; a table
without it predates versioning and is version 1. Each step of
`schemas.MIGRATIONS` adds columns, fills them in the stored rows and sets
table properties, so an upgraded table keeps its rows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from delta.tables import DeltaTable
from pyspark.sql.types import ArrayType, DataType, StructType

from smb_fanout import schemas
from smb_fanout.identifiers import qualified_name, quote_identifier

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from smb_fanout.tables import TableRef

logger = logging.getLogger(__name__)

VERSION_PROPERTY = "smb_fanout.schema_version"

# Tables already checked by this process, by SQL name.
_checked: set[str] = set()


class SchemaAheadError(RuntimeError):
    """Raised when a table has a newer schema version than this code writes."""


def create(spark: SparkSession, ref: TableRef) -> None:
    """Create the table with its current schema, properties and clustering."""
    from smb_fanout.tables import TABLE_SCHEMAS

    builder = DeltaTable.createIfNotExists(spark).addColumns(schemas.struct_type(TABLE_SCHEMAS[ref.key]))
    builder = builder.location(str(ref.path)) if ref.path is not None else builder.tableName(ref.name)
    builder = builder.property(VERSION_PROPERTY, str(schemas.schema_version(ref.key)))
    cluster_by: tuple[str, ...] = ()
    for step in schemas.MIGRATIONS.get(ref.key, ()):
        for name, value in step.properties:
            builder = builder.property(name, value)
        cluster_by = step.cluster_by or cluster_by
    if cluster_by:
        builder = builder.clusterBy(*cluster_by)
    builder.execute()
    _checked.add(ref.sql_name)
    logger.info("created table %s at schema version %s", ref.sql_name, schemas.schema_version(ref.key))


def stored_version(spark: SparkSession, ref: TableRef) -> int:
    detail = ref.delta(spark).detail().select("properties").first()
    properties = (detail["properties"] if detail is not None else None) or {}
    return int(properties.get(VERSION_PROPERTY, "1"))


def upgrade_once(spark: SparkSession, ref: TableRef) -> None:
    """Upgrade the table to the current version the first time this process touches it."""
    if ref.sql_name in _checked:
        return
    upgrade(spark, ref)
    _checked.add(ref.sql_name)


def upgrade(spark: SparkSession, ref: TableRef) -> int:
    """Apply the migrations the table has not had yet and return the version it had before.

    A step interrupted halfway is completed on the next call: columns that
    already exist are not added again and backfills only fill nulls.

    Raises:
        SchemaAheadError: the table's version is newer than this code's.
    """
    from smb_fanout.tables import with_conflict_retry

    current = schemas.schema_version(ref.key)
    found = stored_version(spark, ref)
    if found > current:
        raise SchemaAheadError(
            f"table {ref.sql_name} has schema version {found}, but this smb-fanout writes version {current}: "
            "a newer smb-fanout wrote it. Run that version, or point storage.schema at another schema"
        )
    for step in schemas.MIGRATIONS.get(ref.key, ()):
        if step.version > found:
            with_conflict_retry(lambda step=step: _apply(spark, ref, step), f"upgrade {ref.sql_name}")  # type: ignore[misc]
            logger.warning("upgraded table %s to schema version %s", ref.sql_name, step.version)
    return found


def _apply(spark: SparkSession, ref: TableRef, step: schemas.Migration) -> None:
    table = ref.sql_name
    if step.columns:
        existing = {field.name for field in ref.delta(spark).toDF().schema}
        missing = [field for field in schemas.struct_type(step.columns) if field.name not in existing]
        if missing:
            columns = ", ".join(f"{quote_identifier(field.name)} {field.dataType.simpleString()}" for field in missing)
            spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({columns})")
    if step.nested_columns:
        schema = ref.delta(spark).toDF().schema
        fields = [item.strip().split(maxsplit=1) for item in step.nested_columns.split(",")]
        missing_nested = [(path, kind) for path, kind in fields if not _has_field(schema, path)]
        if missing_nested:
            columns = ", ".join(f"{qualified_name(*path.split('.'))} {kind}" for path, kind in missing_nested)
            spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({columns})")
    for column, expression in step.backfill:
        name = quote_identifier(column)
        spark.sql(f"UPDATE {table} SET {name} = {expression} WHERE {name} IS NULL")
    if step.cluster_by:
        spark.sql(f"ALTER TABLE {table} CLUSTER BY ({', '.join(quote_identifier(c) for c in step.cluster_by)})")
    properties = [*step.properties, (VERSION_PROPERTY, str(step.version))]
    assignments = ", ".join(f"'{name}' = '{value}'" for name, value in properties)
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({assignments})")


def _has_field(schema: DataType, path: str) -> bool:
    """Tell whether a dotted path (`element` steps into arrays) names a field of `schema`."""
    current = schema
    for part in path.split("."):
        if isinstance(current, ArrayType) and part == "element":
            current = current.elementType
        elif isinstance(current, StructType) and part in current.fieldNames():
            current = current[part].dataType
        else:
            return False
    return True
