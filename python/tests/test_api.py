"""The Python API: sessions, SQL, results as Arrow / pandas / polars,
registering data, errors."""

import subprocess
import io

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv
import pytest

import rookery
from conftest import DATA


def test_sql_runs_every_statement_and_returns_the_last(ctx):
    frame = ctx.sql(
        "CREATE VIEW v AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) t(n, s);\n"
        "SELECT n * 10 AS n, s FROM v ORDER BY n"
    )
    table = frame.to_arrow()
    assert table.column_names == ["n", "s"]
    assert table.to_pydict() == {"n": [10, 20], "s": ["a", "b"]}
    assert frame.columns == ["n", "s"]
    assert frame.schema.field("s").type in (pa.string(), pa.string_view(), pa.large_string())


def test_dataframes_are_lazy_and_rerun(ctx):
    ctx.register("t", {"x": [1, 2, 3]})
    frame = ctx.sql("SELECT sum(x) AS s FROM t")
    assert frame.to_arrow().column("s").to_pylist() == [6]
    assert frame.to_pandas()["s"].tolist() == [6]  # runs again
    ctx.register("t", {"x": [10]})  # replaces the table for new queries
    assert ctx.sql("SELECT sum(x) AS s FROM t").to_arrow().column("s").to_pylist() == [10]


def test_results_in_every_form(ctx):
    frame = ctx.sql("SELECT v AS n, v * 0.5 AS half FROM generate_series(1, 5000) t(v)")
    arrow = frame.to_arrow()
    assert arrow.num_rows == 5000
    assert pa.table(frame).equals(arrow)  # __arrow_c_stream__
    assert pa.RecordBatchReader.from_stream(frame).read_all().num_rows == 5000
    assert frame.to_pandas()["half"].sum() == pytest.approx(arrow.column("half").to_numpy().sum())
    polars = frame.to_polars()
    assert isinstance(polars, pl.DataFrame) and polars.height == 5000
    assert pl.from_arrow(pa.table(frame)).height == 5000
    batches = list(frame.iter_batches())
    assert sum(b.num_rows for b in batches) == 5000 and len(batches) >= 1
    assert sum(b.num_rows for b in frame.collect()) == 5000
    assert frame.count() == 5000
    assert frame.limit(3).to_arrow().num_rows == 3


def test_iter_batches_streams_in_bounded_memory(ctx):
    # A billion rows would not fit; streaming five batches of them does.
    frame = ctx.sql("SELECT v FROM generate_series(1, 1000000000) t(v)")
    seen = 0
    for i, batch in enumerate(frame.iter_batches()):
        seen += batch.num_rows
        if i == 4:
            break
    assert 0 < seen < 1_000_000_000


def test_show_and_explain(ctx, capsys):
    frame = ctx.sql("SELECT v, 'x' || v AS s FROM generate_series(1, 30) t(v)")
    frame.show(5)
    out = capsys.readouterr().out
    assert "x1" in out and "x5" in out and "x6" not in out
    plan = frame.explain()
    assert "logical_plan" in plan and "physical_plan" in plan
    analyzed = frame.explain(analyze=True)
    assert "output_rows" in analyzed


def test_pandas_and_arrow_register_and_join_an_image_table(ctx):
    labels = pd.DataFrame({"train_id": [0, 1, 2], "note": ["first", "second", "third"]})
    ctx.register("notes", labels)
    ctx.register("extra", pa.table({"train_id": [0, 1], "weight": [0.5, 2.0]}))
    ctx.register_images("train", str(DATA / "Train" / "*.jpg"))
    ctx.register_csv("counts", str(DATA / "Train" / "train.csv"))
    frame = ctx.sql(
        "SELECT n.note, e.weight, c.pups, t.width FROM train t "
        "JOIN notes n ON CAST(t.name AS BIGINT) = n.train_id "
        "JOIN counts c ON c.train_id = n.train_id "
        "LEFT JOIN extra e ON e.train_id = n.train_id ORDER BY n.train_id"
    )
    result = frame.to_pandas()
    assert result["note"].tolist() == ["first", "second", "third"]
    assert result["weight"].tolist()[:2] == [0.5, 2.0] and pd.isna(result["weight"].tolist()[2])
    assert (result["width"] > 0).all()
    assert sorted(ctx.tables()) == sorted(["counts", "extra", "notes", "train"])
    ctx.register("from_polars", pl.DataFrame({"a": [1, 2]}))
    assert ctx.sql("SELECT sum(a) AS s FROM from_polars").to_arrow().column(0).to_pylist() == [3]


def test_to_arrow_equals_the_cli_csv(ctx, rookery_bin):
    sql = (
        "SELECT name, width, height, format FROM images('" + str(DATA / "Train" / "*.jpg") + "') "
        "ORDER BY name"
    )
    table = ctx.sql(sql).to_arrow()
    cli = subprocess.run(
        [rookery_bin, "--quiet", "--format", "csv", "--partitions", "2", "-c", sql],
        capture_output=True,
        check=True,
    )
    from_cli = pyarrow.csv.read_csv(
        io.BytesIO(cli.stdout),
        convert_options=pyarrow.csv.ConvertOptions(column_types={"name": pa.string(), "format": pa.string()}),
    )
    assert table.column_names == from_cli.column_names
    for name in table.column_names:
        assert [str(v) for v in table.column(name).to_pylist()] == [str(v) for v in from_cli.column(name).to_pylist()]
    assert table.num_rows == len(list((DATA / "Train").glob("*.jpg")))


def test_bad_sql_raises_rookery_error(ctx):
    with pytest.raises(rookery.Error, match="(?i)sql parser error|expected"):
        ctx.sql("SELEC 1")
    with pytest.raises(rookery.Error, match="no_such_table"):
        ctx.sql("SELECT * FROM no_such_table")
    with pytest.raises(rookery.Error, match="statement at line 2"):
        ctx.sql("SELECT 1;\nSELECT * FROM missing_too;")
    with pytest.raises(rookery.Error):
        ctx.sql("   -- nothing\n")
    assert issubclass(rookery.Error, Exception)


def test_memory_limit_error_has_its_message():
    small = rookery.connect(memory_limit="1M", partitions=1)
    frame = small.sql(
        "SELECT v, count(*) FROM (SELECT v % 2000000 AS v FROM generate_series(1, 4000000) t(v)) GROUP BY v ORDER BY v"
    )
    with pytest.raises(rookery.Error, match="(?i)resources exhausted|memory"):
        frame.to_arrow()
    # The session lives on.
    assert small.sql("SELECT 1 AS one").to_arrow().column(0).to_pylist() == [1]


def test_bad_options_are_refused():
    with pytest.raises(rookery.Error, match="not a size"):
        rookery.connect(memory_limit="lots")
    with pytest.raises(rookery.Error, match="partitions"):
        rookery.connect(partitions=0)
    with pytest.raises(TypeError):
        rookery.connect(memory_limit=1.5)
    with pytest.raises(TypeError, match="cannot register"):
        rookery.connect().register("x", 42)


def test_copy_runs_at_once_and_is_all_or_nothing(ctx, tmp_path):
    target = tmp_path / "out.csv"
    result = ctx.sql(f"COPY (SELECT v FROM generate_series(1, 3) t(v)) TO '{target}' STORED AS CSV")
    assert target.exists()  # COPY ran in sql(), as DuckDB does
    assert result.to_arrow().column(0).to_pylist() == [3]
    before = target.read_bytes()
    with pytest.raises(rookery.Error):
        ctx.sql(f"COPY (SELECT 1 / (v - 2) AS x FROM generate_series(1, 3) t(v)) TO '{target}' STORED AS CSV")
    assert target.read_bytes() == before


def test_cnn_classify_from_python(ctx):
    from conftest import FIXTURES

    model = FIXTURES / "colour_classifier.onnx"
    frame = ctx.sql(
        f"SELECT name, cnn_classify('{model}', image) AS label FROM images('{DATA / 'Test'}') ORDER BY name LIMIT 3"
    )
    labels = frame.to_pandas()["label"].tolist()
    assert len(labels) == 3 and all(isinstance(label, str) and label for label in labels)
