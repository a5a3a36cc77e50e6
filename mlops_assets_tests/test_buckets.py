"""Hash buckets and id ranges of series: every row in exactly one, every series whole."""

import duckdb
import pandas as pd
import pytest

from mlops_assets.buckets import bucket_count, in_bucket, range_rows, series_ranges


def test_hash_buckets_hold_every_row_once_and_every_series_whole():
    con = duckdb.connect()
    con.execute("create schema s")
    con.execute("create table s.t as select 'S' || lpad((i % 7)::varchar, 2, '0') as unique_id, i as v "
                "from range(50) r(i)")
    buckets = bucket_count(con, "s.t", "unique_id", 3)
    assert buckets == 3, "7 series, about 3 a bucket"
    assert bucket_count(con, "s.missing", "unique_id", 3) == 1
    parts = [con.execute(f"select * from s.t where {in_bucket('unique_id', buckets, b)}").df() for b in range(buckets)]
    assert sorted(pd.concat(parts)["v"]) == list(range(50)), "every row once"
    owners = [set(p["unique_id"]) for p in parts]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:]), "no series split"


def test_series_ranges_cut_every_series_into_exactly_one_range_in_id_order():
    con = duckdb.connect()
    con.execute("create schema s")
    con.execute("create table s.t as select 'S' || lpad((i % 7)::varchar, 2, '0') as unique_id, i as v "
                "from range(50) r(i) order by random()")
    ranges = series_ranges(con, "s.t", 3)
    assert ranges == [("S00", "S02"), ("S03", "S05"), ("S06", "S06")]
    ranged = [range_rows(con, "s.t", bounds) for bounds in ranges]
    assert [sorted(b["unique_id"].unique()) for b in ranged] == [["S00", "S01", "S02"], ["S03", "S04", "S05"],
                                                                  ["S06"]]
    assert sorted(pd.concat(ranged)["v"]) == list(range(50)), "every row once"
    assert len(range_rows(con, "s.t", None, "v", where="v < 10")) == 10
    assert series_ranges(con, "(select * from s.t where v < 0)", 3) == []
    with pytest.raises(ValueError, match="at least 1"):
        series_ranges(con, "s.t", 0)
