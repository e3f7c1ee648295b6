"""Ctrl-C (KeyboardInterrupt, as Jupyter's stop button sends) stops a
long query or a training within a second, and the session goes on."""

import _thread
import threading
import time

import pytest

from conftest import REPO


def _cpu_seconds_over(wall: float) -> float:
    """CPU time this process uses over `wall` seconds of waiting: near 0
    once the engine has really stopped."""
    before = time.process_time()
    time.sleep(wall)
    return time.process_time() - before


def _assert_interrupt_stops(frame, after: float, what: str) -> None:
    """Ctrl-C `after` seconds into `frame.to_arrow()` raises within a
    second, and the engine then goes idle."""
    started = time.monotonic()
    threading.Timer(after, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        frame.to_arrow()
    stopped = time.monotonic() - started
    assert stopped < after + 1.0, f"took {stopped:.2f} s to stop after the interrupt at {after} s"
    time.sleep(1.0)  # a training's last batch ends
    assert _cpu_seconds_over(1.0) < 0.3, f"the {what} went on working after the interrupt"


def test_keyboard_interrupt_cancels_a_long_query(ctx):
    # Hours of work on 2 cores. (A query whose hash table is growing ends
    # that step first, up to seconds after the interrupt: a task stops at
    # its next yield. This one streams, so it stops at once.)
    frame = ctx.sql("SELECT sum(v % 7) AS n FROM generate_series(1, 100000000000) t(v)")
    _assert_interrupt_stops(frame, 1.0, "query")
    assert ctx.sql("SELECT 41 + 1 AS x").to_arrow().column(0).to_pylist() == [42]


def test_keyboard_interrupt_stops_training_and_writes_no_model(ctx, tmp_path):
    data = REPO / "data" / "frames"
    model = tmp_path / "never.onnx"
    ctx.sql(
        f"""
        CREATE EXTERNAL TABLE frames STORED AS IMAGES LOCATION '{data}/frames/';
        CREATE EXTERNAL TABLE labels STORED AS CSV LOCATION '{data}/labels.csv'
            OPTIONS ('format.has_header' 'true');
        """
    )
    train = (
        "SELECT cnn_train(f.image, l.label, 'epochs={epochs}, input_size=32, output={model}') AS run "
        "FROM labels l JOIN frames f ON f.name = regexp_replace(l.filename, '\\.jpg$', '')"
    )
    # Planned before the interrupt and run after it: the interrupt must
    # not stop it.
    later = ctx.sql(train.format(epochs=1, model=tmp_path / "later" / "m.onnx"))
    frame = ctx.sql(train.format(epochs=100000, model=model))
    _assert_interrupt_stops(frame, 4.0, "training")
    assert not model.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert later.to_arrow().column("run")[0]["epochs"].as_py() == 1


def test_the_gil_is_released_while_the_engine_works(ctx):
    """Python threads run while a query works in another thread."""
    frame = ctx.sql("SELECT count(DISTINCT v % 1000003) AS n FROM generate_series(1, 30000000) t(v)")
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("n", frame.to_arrow().column(0)[0].as_py()))
    worker.start()
    counted, started = 0, time.monotonic()
    while worker.is_alive() and time.monotonic() - started < 60:
        counted += 1  # pure Python: needs the GIL
    elapsed = time.monotonic() - started
    worker.join()
    assert result["n"] == 1000003
    assert elapsed > 0.2, "the query was too quick to tell"
    assert counted / elapsed > 100_000, f"Python ran only {counted / elapsed:.0f} loops/s beside the query"
