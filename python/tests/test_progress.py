"""Progress of a long query: shown after a second (tqdm here, as the test
environment has it), never for quick ones."""

import rookery


def test_a_long_query_shows_progress_and_a_quick_one_does_not(capsys):
    ctx = rookery.connect(partitions=2, progress=True)
    ctx.sql("SELECT 1 AS one").to_arrow()
    assert "rookery" not in capsys.readouterr().err
    slow = ctx.sql("SELECT count(DISTINCT v % 1000003) AS n FROM generate_series(1, 60000000) t(v)")
    assert slow.to_arrow().column(0)[0].as_py() == 1000003
    shown = capsys.readouterr().err
    assert "rookery" in shown and "files read" in shown and "images decoded" in shown


def test_progress_can_be_turned_off(capsys):
    ctx = rookery.connect(partitions=2, progress=False)
    ctx.sql("SELECT count(DISTINCT v % 1000003) AS n FROM generate_series(1, 20000000) t(v)").to_arrow()
    assert capsys.readouterr().err == ""
