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


def test_a_resumable_copy_reports_images_committed_and_left(tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        Image.new("RGB", (8 + i, 6), (10 * i, 0, 0)).save(photos / f"p{i}.png")
    ctx = rookery.connect(partitions=2, progress=False)
    query = f"SELECT name, width FROM images('{photos}/') ORDER BY name"
    ctx.sql(f"COPY ({query}) TO '{tmp_path}/plain.csv' STORED AS CSV")
    assert ctx._session.resume_progress() is None
    ctx.sql(f"COPY ({query}) TO '{tmp_path}/sub.csv' STORED AS CSV OPTIONS ('resume' 'name', 'resume_every' '2')")
    assert ctx._session.resume_progress() == (6, 0, 6)
    assert (tmp_path / "sub.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert not (tmp_path / ".sub.csv.rookery-resume").exists()
