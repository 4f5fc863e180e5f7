"""The Core tables are the one schema: SQLModel's copies, the models and the migrations agree."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import String, Table, UniqueConstraint
from sqlmodel import SQLModel

from ledger.log import core_tables, tables
from tests.conftest import LedgerFactory

MODELS = [getattr(tables, name) for name in tables.__all__]


def describe(table: Table) -> dict[str, Any]:
    """Everything about ``table`` that the database would see, in comparable form."""
    columns = [
        {
            "name": c.name,
            "type": repr(c.type),
            "type_class": type(c.type).__name__,
            "nullable": c.nullable,
            "primary_key": c.primary_key,
            "autoincrement": c.autoincrement,
            "index": c.index,
            "unique": c.unique,
            "default": c.default,
            "server_default": c.server_default,
            "foreign_keys": sorted(fk.target_fullname for fk in c.foreign_keys),
        }
        for c in table.columns
    ]
    indexes = sorted(
        (ix.name, tuple(c.name for c in ix.columns), bool(ix.unique)) for ix in table.indexes
    )
    constraints = sorted(
        (type(k).__name__, tuple(sorted(c.name for c in k.columns)))
        for k in table.constraints
        if k.columns
    )
    return {
        "name": table.name,
        "columns": columns,
        "primary_key": [c.name for c in table.primary_key.columns],
        "indexes": indexes,
        "constraints": constraints,
    }


def test_sqlmodel_metadata_holds_exactly_the_core_tables() -> None:
    assert set(SQLModel.metadata.tables) == set(core_tables.METADATA.tables)
    assert set(core_tables.METADATA.tables) == {
        t.name for t in vars(core_tables).values() if isinstance(t, Table)
    }


@pytest.mark.parametrize("name", sorted(core_tables.METADATA.tables))
def test_sqlmodel_copy_equals_core_table_column_by_column(name: str) -> None:
    core = core_tables.METADATA.tables[name]
    copy = SQLModel.metadata.tables[name]
    assert copy is not core
    assert describe(copy) == describe(core)


def test_describe_sees_a_difference() -> None:
    # The comparison above must be able to fail: a changed length, index or constraint shows.
    base = describe(core_tables.ENTRIES)
    for change in ("length", "index", "unique"):
        other = core_tables.ENTRIES.to_metadata(core_tables.METADATA.__class__())
        column = other.c.provider
        if change == "length":
            column.type = String(65)  # a new type: copies share the type object
        elif change == "index":
            other.indexes.clear()
        else:
            other.append_constraint(UniqueConstraint(column))
        assert describe(other) != base, change


def _python_type(annotation: Any) -> tuple[type, bool]:
    """(type, optional) of a model field annotation such as ``str | None``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        assert len(args) == 1
        return args[0], True
    return annotation, False


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_fields_are_its_table_columns(model: type[SQLModel]) -> None:
    table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models
    assert table is SQLModel.metadata.tables[table.name]
    fields = model.model_fields
    assert list(fields) == [c.name for c in table.columns]
    hints = typing.get_type_hints(model)
    for column in table.columns:
        python_type, optional = _python_type(hints[column.name])
        assert python_type is column.type.python_type, column.name
        assert optional == bool(column.nullable and not column.primary_key), column.name
        # The model maps the copied column itself: no second declaration of it exists.
        assert getattr(model, column.name).property.columns[0] is column


def test_migrated_schema_equals_core_tables(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    with lg.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), core_tables.METADATA)
    assert diff == []
