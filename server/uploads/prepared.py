"""Statements on the verdict's hot path, compiled once and run on the DBAPI cursor.

Every callback reads a record, writes it and writes its outbox event. Through
``Connection.execute`` each of those statements cost about 0.1 ms of SQLAlchemy's own work
(cache-key lookup, execution context, parameter processing, result object): more than the
database's work, and most of the callback's CPU beyond its HEAD. A ``Prepared`` statement is
still written in SQLAlchemy Core and compiled by the engine's own dialect, so the SQL, the
parameter style (SQLite's ``?``, psycopg's ``%(name)s``) and the type conversions (SQLite's
text timestamps) are exactly those ``Connection.execute`` would use; only the per-call
machinery is skipped. It runs inside a SQLAlchemy ``Connection`` (and its transaction), and a
driver error is raised as SQLAlchemy's ``DBAPIError`` like any other statement's, so callers
still catch ``SQLAlchemyError``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable


class Prepared:
    """One Core statement compiled for one dialect.

    ``column_keys``: for an INSERT, the columns it gives values for (as
    ``Connection.execute`` would infer from the first parameter set); each run must give
    a value for every one of them and for every ``bindparam`` without a value.
    """

    def __init__(
        self,
        statement: Executable,
        dialect: Dialect,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(statement, ClauseElement):
            raise TypeError("Prepared takes a Core statement")
        compiled = statement.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        assert isinstance(compiled, SQLCompiler)
        if (
            compiled.literal_execute_params
            or compiled.post_compile_params
            or compiled.escaped_bind_names
        ):
            # Rendered per execution by Connection.execute (expanding IN, escaped names).
            raise ValueError("Prepared takes only statements whose SQL is fixed at compile")
        self.sql: str = compiled.string
        self._positions: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        #: Values of the binds the statement carries itself (literals in a WHERE clause).
        self._defaults: dict[str, Any] = {}
        self._bind_processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                self._defaults[name] = bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._bind_processors[name] = processor
        self._row: type | None = None
        self._result_processors: list[Callable[[Any], Any] | None] = []
        exported = getattr(statement, "exported_columns", None)
        if exported is not None and len(exported):
            self._row = namedtuple("_Row", [column.key for column in exported])  # type: ignore[misc]  # noqa: PYI024
            self._result_processors = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in exported
            ]

    def parameters(self, values: Mapping[str, Any]) -> tuple | dict[str, Any]:
        """The DBAPI parameters for ``values`` (bind name → Python value); a KeyError names
        a bind given no value."""
        defaults, processors = self._defaults, self._bind_processors
        if self._positions is None:
            merged = {**defaults, **values}
            for name, processor in processors.items():
                merged[name] = processor(merged[name])
            return merged
        out = []
        for name in self._positions:
            value = values[name] if name in values else defaults[name]
            convert = processors.get(name)
            out.append(value if convert is None else convert(value))
        return tuple(out)

    def run(self, connection: Connection, values: Mapping[str, Any]) -> list[Any]:
        """Execute in ``connection``'s transaction; the rows it returns (namedtuples named
        after the columns, values converted as ``Connection.execute`` would), or []."""
        parameters = self.parameters(values)
        dbapi_connection = connection.connection
        dialect = connection.dialect
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, parameters)
            raw = cursor.fetchall() if self._row is not None else []
        except dialect.loaded_dbapi.Error as exc:
            disconnected = dialect.is_disconnect(exc, dbapi_connection, cursor)
            _close_quietly(cursor)
            if disconnected:  # as Connection.execute does: the pool must not hand it out again
                connection.invalidate(exc)
            raise DBAPIError.instance(
                self.sql, parameters, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        except BaseException:
            _close_quietly(cursor)
            raise
        cursor.close()
        if not raw:
            return []
        processors = self._result_processors
        make = self._row
        assert make is not None
        return [
            make(
                *(
                    value if p is None else p(value)
                    for p, value in zip(processors, row, strict=True)
                )
            )
            for row in raw
        ]


def _close_quietly(cursor: Any) -> None:
    with suppress(Exception):  # the statement's own error is the one to raise
        cursor.close()
