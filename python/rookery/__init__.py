"""Rookery from Python: SQL over image folders and label files, on Apache
DataFusion, with results as Arrow, pandas or polars and images as numpy.

    import rookery
    ctx = rookery.connect()
    frames = ctx.sql("SELECT name, image FROM images('data/sealions/Train/') LIMIT 4")
    frames                    # in Jupyter: a table with thumbnails
    df = frames.to_pandas()   # the image column holds numpy arrays (rookery.Image)
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterator, Optional, Union

import pyarrow as pa

from . import _rookery
from ._html import table_html
from ._image import Image, image_cells, images_to_arrow, is_image_type, looks_like_images
from ._progress import Progress

Error = _rookery.Error

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("rookery")
except PackageNotFoundError:  # imported from a source tree without installing
    __version__ = "unknown"

__all__ = [
    "Context",
    "DataFrame",
    "Error",
    "Image",
    "connect",
    "image_cells",
    "images_to_arrow",
    "register",
]


def _find_onnxruntime() -> None:
    """Points the engine at the onnxruntime wheel's library when that
    package is installed and nothing else was set up (the engine also
    looks beside itself and in ~/.cache/rookery/onnxruntime)."""
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    cache = pathlib.Path.home() / ".cache" / "rookery" / "onnxruntime" / "libonnxruntime.so"
    if cache.exists():
        return
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        libraries = sorted(pathlib.Path(folder, "capi").glob("libonnxruntime.so*"))
        if libraries:
            os.environ["ORT_DYLIB_PATH"] = str(libraries[0])
            return


_find_onnxruntime()


def _quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_text(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _memory_bytes(limit: Union[int, str, None]) -> Optional[int]:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, str)):
        raise TypeError(f"memory_limit is a number of bytes or a size such as '4G', not {limit!r}")
    if isinstance(limit, str):
        return _rookery.parse_byte_size(limit)
    if limit <= 0:
        raise Error(f"memory_limit must be above 0 bytes, not {limit}")
    return limit


class _Text(str):
    """Text that shows as itself (plans print as plans, not as a quoted string)."""

    def __repr__(self) -> str:
        return str(self)


class Context:
    """A Rookery session: image tables, label tables and every Rookery
    function, on one machine or on a Ballista cluster."""

    def __init__(
        self,
        memory_limit: Union[int, str, None] = None,
        partitions: Optional[int] = None,
        batch_size: Optional[int] = None,
        cluster: Optional[str] = None,
        progress: bool = True,
    ):
        self._session = _rookery.Session(_memory_bytes(memory_limit), partitions, batch_size, cluster)
        self.progress = progress

    def _progress(self) -> Progress:
        return Progress(self._session, self.progress)

    def sql(self, text: str) -> "DataFrame":
        """Runs SQL text of one or more statements, as ``rookery -f`` does:
        every statement but the last runs now, and a lazy DataFrame of the
        last is returned. COPY, INSERT, CREATE and SET run at once."""
        with self._progress() as progress:
            frame = self._session.sql(text, progress)
        return DataFrame(self, frame)

    def table(self, name: str) -> "DataFrame":
        """All rows of table ``name``, lazily."""
        return self.sql(f"SELECT * FROM {_quote_name(name)}")

    def register(self, name: str, data) -> None:
        """Registers ``data`` as table ``name`` (replacing one of that
        name): a pandas or polars DataFrame, a pyarrow Table, RecordBatch or
        RecordBatchReader, a dict of columns, or anything with
        ``__arrow_c_stream__``. pandas columns of numpy images (uint8
        ``H x W x C`` arrays) or PIL images become image columns."""
        self._session.register_arrow(name, _to_arrow_stream(data))

    def from_pandas(self, frame, name: str) -> "DataFrame":
        """Registers a pandas DataFrame as ``name`` and returns it as a
        Rookery DataFrame."""
        self.register(name, frame)
        return self.table(name)

    def register_images(self, name: str, location: str, **options) -> None:
        """Registers an image folder (local or object store, flat or one
        folder per class) as table ``name``; ``options`` are the table's
        OPTIONS, as in ``CREATE EXTERNAL TABLE ... STORED AS IMAGES``."""
        self._create_external(name, "IMAGES", location, options)

    def register_csv(self, name: str, location: str, has_header: bool = True, delimiter: str = ",", **options) -> None:
        """Registers a CSV (or, with ``delimiter='\\t'``, TSV) file or folder
        as table ``name``."""
        options = {"format.has_header": "true" if has_header else "false", "format.delimiter": delimiter, **options}
        self._create_external(name, "CSV", location, options)

    def _create_external(self, name: str, stored_as: str, location: str, options: dict) -> None:
        self.deregister(name)
        sql = f"CREATE EXTERNAL TABLE {_quote_name(name)} STORED AS {stored_as} LOCATION {_quote_text(location)}"
        if options:
            pairs = ", ".join(f"{_quote_text(k)} {_quote_text(_option_text(v))}" for k, v in options.items())
            sql += f" OPTIONS ({pairs})"
        self.sql(sql)

    def deregister(self, name: str) -> None:
        """Removes table ``name`` (no error when there is none)."""
        self._session.deregister(name)

    def tables(self) -> list:
        """Names of the tables in the default schema."""
        rows = self.sql(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' ORDER BY table_name"
        ).to_arrow()
        return rows.column(0).to_pylist()


def _option_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_arrow_stream(data):
    """``data`` as an object with ``__arrow_c_stream__``."""
    if isinstance(data, DataFrame):
        return data.to_arrow()
    if isinstance(data, dict):
        return pa.table(data)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__
    if module.startswith("pandas"):
        return _pandas_to_arrow(data)
    if hasattr(data, "__arrow_c_stream__"):
        return data
    raise TypeError(
        f"cannot register a {type(data).__name__}: expected a pandas or polars DataFrame, "
        "a pyarrow Table or RecordBatch, a dict of columns, or an object with __arrow_c_stream__"
    )


def _pandas_to_arrow(frame) -> pa.Table:
    columns, names = [], []
    for name in frame.columns:
        series = frame[name]
        if series.dtype == object and looks_like_images(series.head(8).tolist()):
            columns.append(images_to_arrow(series.tolist()))
        else:
            columns.append(pa.Array.from_pandas(series))
        names.append(str(name))
    return pa.Table.from_arrays(columns, names=names)


class DataFrame:
    """The lazy result of ``Context.sql``: it runs when results are asked
    for (``to_arrow``, ``to_pandas``, ``iter_batches``, ``show``, ...),
    and each of those runs it anew."""

    def __init__(self, context: Context, frame):
        self._context = context
        self._frame = frame

    @property
    def schema(self) -> pa.Schema:
        """The results' Arrow schema (images are structs
        ``{width, height, channels, data}``)."""
        return pa.schema(self._frame)

    @property
    def columns(self) -> list:
        return self._frame.column_names()

    def __arrow_c_schema__(self):
        return self._frame.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema=None):
        """The Arrow PyCapsule stream interface: ``pyarrow.table(df)``,
        ``polars.from_arrow`` (and any Arrow consumer) read the results
        without a copy."""
        return self._frame.__arrow_c_stream__(requested_schema)

    def iter_batches(self) -> Iterator[pa.RecordBatch]:
        """The results as pyarrow RecordBatches, streamed: one batch is
        held at a time. Ctrl-C stops the query."""
        with self._context._progress() as progress:
            stream = self._frame.execute(progress)
            try:
                while True:
                    batch = stream.next_batch(progress)
                    if batch is None:
                        return
                    batch = pa.record_batch(batch)
                    progress.add_rows(batch.num_rows)
                    yield batch
            finally:
                stream.close()

    def collect(self) -> list:
        """Every result batch, as a list of pyarrow RecordBatches."""
        return list(self.iter_batches())

    def to_arrow(self) -> pa.Table:
        """The results as a pyarrow Table (sharing the engine's buffers)."""
        return pa.Table.from_batches(self.collect(), schema=self.schema)

    def to_pandas(self):
        """The results as a pandas DataFrame; image columns hold
        ``rookery.Image`` cells, numpy arrays sharing the engine's pixels."""
        return _table_to_pandas(self.to_arrow())

    def to_polars(self):
        """The results as a polars DataFrame (needs polars)."""
        try:
            import polars
        except ImportError as e:
            raise ImportError("to_polars() needs polars: pip install polars") from e
        return polars.from_arrow(self.to_arrow())

    def limit(self, n: int, offset: int = 0) -> "DataFrame":
        """The first ``n`` rows (after skipping ``offset``), lazily."""
        return DataFrame(self._context, self._frame.limit(n, offset))

    def count(self) -> int:
        """Number of result rows."""
        with self._context._progress() as progress:
            return self._frame.count(progress)

    def show(self, n: int = 20) -> None:
        """Prints the first ``n`` rows as a text table."""
        print(self._frame.show_text(n))

    def explain(self, verbose: bool = False, analyze: bool = False) -> str:
        """The query plan as text; ``analyze=True`` runs the query and
        adds each operator's metrics."""
        return _Text(self._frame.explain(verbose, analyze))

    def _repr_html_(self, max_rows: int = 10) -> str:
        table = self.limit(max_rows + 1).to_arrow()
        return table_html(table.slice(0, max_rows), table.num_rows > max_rows)

    def __repr__(self) -> str:
        return f"rookery.DataFrame(columns={self.columns})"


def _table_to_pandas(table: pa.Table):
    import pandas as pd

    def column(name, values):
        if is_image_type(values.type):
            return pd.Series(image_cells(values), dtype=object, name=name)
        return values.to_pandas().rename(name)

    # concat keeps every column, repeated names too.
    columns = [column(name, values) for name, values in zip(table.column_names, table.columns)]
    if not columns:
        return pd.DataFrame(index=range(table.num_rows))
    return pd.concat(columns, axis=1)


def connect(
    memory_limit: Union[int, str, None] = None,
    partitions: Optional[int] = None,
    batch_size: Optional[int] = None,
    cluster: Optional[str] = None,
    progress: bool = True,
) -> Context:
    """A new Rookery session.

    memory_limit: bytes, or a size such as ``"4G"``; a query that needs
        more fails with ``rookery.Error``. Default: 80 % of the memory.
    partitions: parallel streams per query. Default: one per core.
    batch_size: rows per batch of ordinary (non-image) operators.
    cluster: ``"df://host:port"`` runs queries on that Ballista scheduler.
    progress: show progress for queries over a second.
    """
    return Context(memory_limit, partitions, batch_size, cluster, progress)


def register(ctx) -> None:
    """Adds Rookery's functions to a datafusion-python ``SessionContext``
    (``datafusion`` 55): every scalar and aggregate function and the
    ``images()`` and ``image_tiles()`` table functions, through
    datafusion-ffi. They use Rookery's own memory pool and default options;
    ``STORED AS IMAGES`` tables and COPY need a Rookery ``Context``."""
    import datafusion

    for kind, name, export in _rookery.ffi_exports():
        if kind == "scalar":
            ctx.register_udf(datafusion.ScalarUDF.from_pycapsule(export))
        elif kind == "aggregate":
            ctx.register_udaf(datafusion.AggregateUDF.from_pycapsule(export))
        else:
            ctx.register_udtf(datafusion.udtf(export, name))
