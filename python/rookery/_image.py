"""Image cells in Python: numpy arrays that share the engine's pixels."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
import pyarrow as pa

from . import _rookery

IMAGE_FIELDS = ("width", "height", "channels", "data")

# One 16-byte view of Arrow's binary view layout: values over 12 bytes
# name a data buffer and an offset in it; shorter ones sit in the view.
_VIEW = np.dtype([("size", "<i4"), ("prefix", "V4"), ("buffer", "<i4"), ("offset", "<i4")])


class Image(np.ndarray):
    """An image: an ``H x W x C`` ``uint8`` numpy array (C is 1 for grey,
    3 for RGB, 4 for RGBA), top row first.

    Images read from the engine share its buffer (no copy) and are
    read-only; ``img.copy()`` gives a writable array. ``to_pil()`` makes a
    PIL image, and notebooks draw an ``Image`` inline. Any ``uint8`` array
    of that shape can be turned into one with ``Image(array)``.
    """

    def __new__(cls, pixels) -> "Image":
        return _as_pixels("an image", pixels, contiguous=False).view(cls)

    # Arithmetic gives plain arrays: a sum of images is not an image.
    def __array_wrap__(self, array, context=None, return_scalar=False):
        if return_scalar:
            return array[()]
        return array.view(np.ndarray) if isinstance(array, np.ndarray) else array

    @property
    def width(self) -> int:
        return int(self.shape[1])

    @property
    def height(self) -> int:
        return int(self.shape[0])

    @property
    def channels(self) -> int:
        return int(self.shape[2]) if self.ndim == 3 else 1

    def to_pil(self):
        """This image as a ``PIL.Image.Image`` (mode L, RGB or RGBA)."""
        from PIL import Image as PILImage

        pixels = np.asarray(self)
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
        return PILImage.fromarray(np.ascontiguousarray(pixels))

    def thumbnail_png(self, max_side: int = 512) -> bytes:
        """A PNG of this image scaled to fit in ``max_side`` pixels."""
        column = pa.array(_rookery.png_thumbnails(images_to_arrow([self]), max_side))
        return column[0].as_py()

    def _repr_png_(self) -> Optional[bytes]:
        if self.ndim != 3 or self.dtype != np.uint8 or self.shape[2] not in (1, 3, 4):
            return None
        return self.thumbnail_png(512)

    def __repr__(self) -> str:
        if self.ndim == 3 and self.dtype == np.uint8:
            return f"Image({self.width}x{self.height}, {self.channels} channel{'s' if self.channels > 1 else ''})"
        return repr(np.asarray(self))


def is_image_type(data_type: pa.DataType) -> bool:
    """True for the engine's image struct ``{width, height, channels, data}``."""
    return pa.types.is_struct(data_type) and tuple(f.name for f in data_type) == IMAGE_FIELDS


def image_cells(column) -> list:
    """The images of an image column (an Arrow array or chunked array) as
    ``Image`` arrays sharing the column's buffers; NULL gives None."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    cells: list = []
    for chunk in chunks:
        cells.extend(_chunk_cells(chunk))
    return cells


def _chunk_cells(chunk: pa.StructArray) -> list:
    widths, heights, channels, data = chunk.flatten()
    widths = widths.to_numpy(zero_copy_only=False)
    heights = heights.to_numpy(zero_copy_only=False)
    channels = channels.to_numpy(zero_copy_only=False)
    valid = chunk.is_valid().to_numpy(zero_copy_only=False)
    pixels = _binary_values(data)
    cells = []
    for i in range(len(chunk)):
        if not valid[i]:
            cells.append(None)
            continue
        buffer, offset, size = pixels(i)
        shape = (int(heights[i]), int(widths[i]), int(channels[i]))
        if shape[0] * shape[1] * shape[2] != size:
            raise _rookery.Error(f"image {i} says {shape[1]}x{shape[0]}x{shape[2]} but holds {size} bytes")
        array = np.frombuffer(buffer, dtype=np.uint8, count=size, offset=offset).reshape(shape)
        cells.append(array.view(Image))
    return cells


def _binary_values(data: pa.Array):
    """A function giving (buffer, offset, size) of value i of a binary,
    large binary or binary view array, without copying the value."""
    buffers = data.buffers()
    if pa.types.is_binary_view(data.type):
        views = np.frombuffer(buffers[1], dtype=_VIEW)[data.offset : data.offset + len(data)]
        raw = np.frombuffer(buffers[1], dtype=np.uint8)
        base = data.offset * _VIEW.itemsize

        def view_value(i):
            size = int(views["size"][i])
            if size <= 12:  # inline: the bytes follow the length in the view
                return raw, base + i * _VIEW.itemsize + 4, size
            return buffers[2 + int(views["buffer"][i])], int(views["offset"][i]), size

        return view_value
    offsets_type = np.int64 if pa.types.is_large_binary(data.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=offsets_type)[data.offset : data.offset + len(data) + 1]

    def offset_value(i):
        start = int(offsets[i])
        return buffers[2], start, int(offsets[i + 1]) - start

    return offset_value


def _as_pixels(what: str, image, contiguous: bool = True) -> np.ndarray:
    """`image` as an H x W x C uint8 array (H x W gets C = 1); `what`
    names it in errors."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"{what}: expected uint8 samples, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"{what}: expected H x W x C with C in 1, 3, 4, got shape {array.shape}")
    return np.ascontiguousarray(array) if contiguous else array


def images_to_arrow(images: Iterable) -> pa.StructArray:
    """An image column from numpy arrays (``H x W`` or ``H x W x C``
    ``uint8``, or PIL images); None gives NULL. Each image is copied once."""
    widths, heights, channels, data, valid = [], [], [], [], []
    for index, image in enumerate(images):
        if image is None:
            widths.append(0), heights.append(0), channels.append(1), data.append(b""), valid.append(False)
            continue
        if not isinstance(image, np.ndarray) and hasattr(image, "mode") and hasattr(image, "size"):
            image = np.asarray(image.convert("RGBA") if image.mode not in ("L", "RGB", "RGBA") else image)
        pixels = _as_pixels(f"image {index}", image)
        heights.append(pixels.shape[0])
        widths.append(pixels.shape[1])
        channels.append(pixels.shape[2])
        data.append(pixels.tobytes())
        valid.append(True)
    fields = [
        pa.field("width", pa.uint32(), nullable=False),
        pa.field("height", pa.uint32(), nullable=False),
        pa.field("channels", pa.uint8(), nullable=False),
        pa.field("data", pa.binary_view(), nullable=False),
    ]
    arrays = [
        pa.array(widths, pa.uint32()),
        pa.array(heights, pa.uint32()),
        pa.array(channels, pa.uint8()),
        pa.array(data, pa.binary_view()),
    ]
    mask = None if all(valid) else pa.array([not v for v in valid])
    return pa.StructArray.from_arrays(arrays, fields=fields, mask=mask)


def looks_like_images(values: Sequence) -> bool:
    """True when a pandas object column holds images (numpy uint8 arrays
    of 2 or 3 dimensions, or PIL images)."""
    for value in values:
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            return value.dtype == np.uint8 and value.ndim in (2, 3)
        return hasattr(value, "mode") and hasattr(value, "size") and hasattr(value, "convert")
    return False
