"""The guard lets one SELECT of catalog tables and columns through, with a row limit, and refuses the rest."""

from __future__ import annotations

import duckdb
import pytest

from mlops_assets.ask.catalog import table_catalog
from mlops_assets.ask.connection import QueryTimeout, run_query, snapshot_connection
from mlops_assets.ask.guard import Refused, check_sql


@pytest.fixture(scope="module")
def catalog(published):
    return table_catalog(published.exports)


@pytest.mark.parametrize(("sql", "reason"), [
    ("select 1; drop table serving.sales_overall", "multiple statements"),
    ("insert into serving.sales_overall (unique_id) values ('x')", "INSERT (a write)"),
    ("update serving.sales_overall set sales = 0", "UPDATE (a write)"),
    ("delete from serving.sales_overall", "DELETE (a write)"),
    ("drop table serving.sales_overall", "DROP (a write)"),
    ("create table serving.x as select 1", "CREATE (a write)"),
    ("alter table serving.sales_overall add column x int", "ALTER (a write)"),
    ("copy serving.sales_overall to '/tmp/out.csv'", "COPY"),
    ("attach '/tmp/other.duckdb' as other", "ATTACH"),
    ("pragma database_list", "PRAGMA"),
    ("set enable_external_access = true", "SET"),
    ("install httpfs", "INSTALL"),
    ("load httpfs", "LOAD"),
    ("select * from read_csv('/etc/passwd')", "read_csv()"),
    ("select * from read_csv_auto('/etc/passwd')", "read_csv_auto()"),
    ("select * from read_parquet('x.parquet')", "read_parquet()"),
    ("select * from '/etc/passwd'", "a file (/etc/passwd)"),
    ("select * from glob('/tmp/*')", "glob()"),
    ("select getenv('HOME')", "getenv()"),
    ("select * from duckdb_settings()", "duckdb_settings()"),
    ("select * from query('select 1')", "query()"),
    ("select * from gold.sales_data_for_forecast", "unknown table gold.sales_data_for_forecast"),
    ("select * from secrets", "unknown table secrets"),
    ("select * from other.serving.sales_overall", "names a database"),
    ("select source_file from raw.products", "unknown column source_file"),
    ("select p.nope from raw.products p", "unknown column nope of raw.products"),
    ("summarize serving.sales_overall", "not a query"),
    ("selec * from serving.sales_overall", "not valid SQL"),
    ("", "empty"),
])
def test_refuses_with_the_reason(catalog, sql, reason):
    with pytest.raises(Refused, match=None) as refused:
        check_sql(sql, catalog)
    assert reason in str(refused.value)


def test_lets_selects_through_with_a_row_limit(catalog):
    assert check_sql("select brand, sum(sales) as s from serving.sales_overall group by brand", catalog).endswith(
        "LIMIT 1000")
    assert check_sql("select * from serving.sales_overall limit 5000", catalog, max_rows=50).endswith("LIMIT 50")
    assert check_sql("select * from serving.sales_overall limit 5", catalog).endswith("LIMIT 5")
    joined = ("with t as (select unique_id, sum(sales) as total from serving.sales_overall group by 1) "
              "select t.unique_id, t.total, c.model from t join forecasting.series_champions c using (unique_id)")
    assert "JOIN forecasting.series_champions" in check_sql(joined, catalog)


def test_the_connection_itself_refuses_writes_files_and_settings(published, catalog):
    """Past the guard (queries run directly), DuckDB still refuses: read-only, no file access, locked settings."""
    before = {p: p.read_bytes() for p in sorted(published.exports.glob("*/*.parquet"))}
    secret = published.root / "secret.csv"
    secret.write_text("a\n1\n")
    with snapshot_connection(catalog, published.root / "answers" / "tables") as con:
        assert run_query(con, "select count(*) as n from serving.sales_overall")["n"].iloc[0] > 0
        for sql in ("create table serving.x as select 1", "drop view serving.sales_overall",
                    "insert into serving.sales_overall (unique_id) values ('x')"):
            with pytest.raises(duckdb.Error, match="read-only|not an table"):
                run_query(con, sql)
        for sql in (f"select * from read_csv('{secret}')", f"copy (select 1) to '{published.exports}/x.csv'",
                    f"attach '{published.root}/other.duckdb'"):
            with pytest.raises(duckdb.Error, match="disabled by configuration"):
                run_query(con, sql)
        with pytest.raises(duckdb.Error, match="locked"):
            run_query(con, "set enable_external_access = true")
        with pytest.raises(QueryTimeout):
            run_query(con, "select count(*) from range(100000000000) a", seconds=0.5)
    assert {p: p.read_bytes() for p in sorted(published.exports.glob("*/*.parquet"))} == before
    assert not (published.exports / "x.csv").exists() and not (published.root / "other.duckdb").exists()
