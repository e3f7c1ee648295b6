"""video_frames() on clips as cameras and ffmpeg write them: H.264 High
profile with CABAC and B-frames (made here by PyAV's libx264), checked
frame by frame against PyAV's own decoding."""

import av
import numpy as np
import pytest


def _frame(n, width=128, height=96):
    """Frame n: a grey level that says n and a square that moves with it."""
    pixels = np.full((height, width, 3), 16 + 4 * n, dtype=np.uint8)
    x = (n * 3) % (width - 16)
    pixels[40:56, x : x + 16] = [230, 40, 40]
    return pixels


def _write_high_profile_clip(path, frames=48, fps=24):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.options = {"profile": "high", "bf": "3", "g": "24", "crf": "18", "preset": "medium"}
        for n in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(n), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _pyav_frames(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        profile = stream.codec_context.profile
        frames = [(av.video.frame.PictureType(f.pict_type).name, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    return profile, frames


@pytest.fixture
def high_profile_clip(tmp_path):
    path = tmp_path / "dive.mp4"
    _write_high_profile_clip(path)
    return path


def test_high_profile_b_frames_decode_in_display_order(ctx, high_profile_clip):
    profile, reference = _pyav_frames(high_profile_clip)
    assert profile == "High"
    assert "B" in {kind for kind, _ in reference}, "the clip has B-frames"

    rows = ctx.sql(
        f"SELECT frame_index, timestamp, image FROM video_frames('{high_profile_clip}') ORDER BY frame_index"
    ).to_pandas()
    assert list(rows["frame_index"]) == list(range(len(reference))) == list(range(48))
    np.testing.assert_allclose(rows["timestamp"], np.arange(48) / 24, atol=1e-6)
    for n, (image, (_, expected)) in enumerate(zip(rows["image"], reference)):
        ours = np.asarray(image).astype(np.int16)
        assert ours.shape == expected.shape == (96, 128, 3)
        # Both decoders are exact; their YUV to RGB conversions differ a little.
        assert np.abs(ours - expected).mean() < 3, f"frame {n}"
        # Display order: frame n's grey level and square position are n's.
        assert abs(int(ours[5, 5, 1]) - (16 + 4 * n)) <= 4, f"frame {n} is out of order"


def test_high_profile_time_ranges_and_sampling(ctx, high_profile_clip):
    _, reference = _pyav_frames(high_profile_clip)
    rows = ctx.sql(
        f"SELECT frame_index, image FROM video_frames('{high_profile_clip}', 'start=1.0, end=1.5') ORDER BY 1"
    ).to_pandas()
    assert list(rows["frame_index"]) == list(range(24, 36))
    for n, image in zip(rows["frame_index"], rows["image"]):
        assert np.abs(np.asarray(image).astype(np.int16) - reference[n][1]).mean() < 3
    sampled = ctx.sql(f"SELECT frame_index FROM video_frames('{high_profile_clip}', 'fps=4') ORDER BY 1")
    assert list(sampled.to_pandas()["frame_index"]) == list(range(0, 48, 6))
