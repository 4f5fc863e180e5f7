"""The service's read pool on PostgreSQL: no ping per checkout, and no closed connection served."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from .conftest import ServeFactory


def test_a_connection_the_server_closed_never_reaches_a_request(
    serve: ServeFactory, database_url: str
) -> None:
    served = serve()
    engine = served.app.state.service.engine
    if engine.dialect.name != "postgresql":
        assert served.client.get("/v1/entries/3", headers=served.headers("auditor")).is_success
        return  # SQLite has no server to close a connection
    assert engine.pool._pre_ping is False  # the round trip per checkout is gone
    headers = served.headers("auditor")
    assert served.client.get("/v1/entries/3", headers=headers).status_code == 200
    with engine.connect() as conn:  # the pooled connection that request used
        victims = {conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()}
    admin = create_engine(database_url)
    try:
        with admin.connect() as conn:
            for pid in victims:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                # pg_terminate_backend only signals; wait until that backend is gone. Within
                # one transaction pg_stat_activity is a snapshot taken at its first read, so
                # each round clears it (without that the loop never sees the backend leave);
                # the deadline is only a last guard against a backend that never exits.
                conn.execute(
                    text(
                        "DO $$ DECLARE deadline timestamptz := clock_timestamp() + "
                        "interval '60 seconds'; BEGIN WHILE EXISTS (SELECT 1 FROM "
                        f"pg_stat_activity WHERE pid = {int(pid)}) LOOP "
                        "IF clock_timestamp() > deadline THEN "
                        f"RAISE EXCEPTION 'backend {int(pid)} still runs after 60 s'; END IF; "
                        "PERFORM pg_sleep(0.01); PERFORM pg_stat_clear_snapshot(); "
                        "END LOOP; END $$"
                    )
                )
    finally:
        admin.dispose()
    for path in ("/v1/entries/3", "/v1/entries?limit=2", "/v1/log/checkpoint"):
        answer = served.client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text


def test_entry_and_page_reads_are_prepared_outside_a_transaction(serve: ServeFactory) -> None:
    """On PostgreSQL the reader runs in autocommit: no BEGIN and ROLLBACK round trips, and
    psycopg keeps the statements it prepared (a rollback per request used to make it forget
    them, so no read was ever prepared and each was planned afresh)."""
    served = serve()
    engine = served.app.state.service.engine
    headers = served.headers("auditor")
    for _ in range(8):  # more than psycopg's prepare threshold (5 uses of one statement)
        assert served.client.get("/v1/entries/3", headers=headers).status_code == 200
        assert served.client.get("/v1/entries?limit=2", headers=headers).status_code == 200
    if engine.dialect.name != "postgresql":
        return  # SQLite reads run in autocommit anyway
    with engine.connect() as conn:  # the pooled connection those requests used
        assert conn.connection.driver_connection.autocommit is True
        prepared = [
            row[0] for row in conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
        ]
    assert any("FROM entries WHERE leaf_index" in s for s in prepared), prepared
    assert any("ORDER BY entries.leaf_index" in s for s in prepared), prepared  # the page
