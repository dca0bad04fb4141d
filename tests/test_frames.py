"""Frame sources: decode known content (flat frames whose grey level encodes the index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emobench.errors import EmobenchError
from emobench.video.frames import (
    FRAME_SOURCES,
    FolderFrameSource,
    FrameReadError,
    FrameSource,
    FrameSourceError,
    VideoFrameSource,
    frame_number,
    open_source,
    read_clip,
)

N_FRAMES = 28
SIDE = 64


def level(i: int) -> int:
    """Grey level of video frame i: 16, 24, ..., 232 (8 apart, so +-3 identifies i)."""
    return 8 * i + 16


def write_video(path: Path, n: int = N_FRAMES, side: int = SIDE, fps: int = 25) -> Path:
    """Lossless-ish H.264 (qp=0) whose frame i is a flat grey image of level(i)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for i in range(n):
            img = np.full((side, side, 3), level(i), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def decoded_levels(frames: np.ndarray) -> list[int]:
    """Map each decoded frame's mean back to the frame index it encodes."""
    means = frames.reshape(len(frames), -1).mean(axis=1)
    idx = np.rint((means - 16) / 8).astype(int)
    assert np.all(np.abs(means - (8 * idx + 16)) <= 3), means
    return idx.tolist()


# --- video ------------------------------------------------------------------------------


def test_video_reads_requested_order(video: Path) -> None:
    src = VideoFrameSource()
    assert src.count(str(video)) == N_FRAMES
    assert src.fps(str(video)) == pytest.approx(25.0)
    assert src.probe(str(video)) == (N_FRAMES, pytest.approx(25.0))
    for req in ([0, 5, 27], [5, 1, 1, 27, 0, 5], [27, 26, 3], list(range(N_FRAMES))):
        frames = src.read(str(video), req)
        assert frames.dtype == np.uint8
        assert frames.shape == (len(req), SIDE, SIDE, 3)
        assert decoded_levels(frames) == req


def test_video_matches_decord_directly(video: Path) -> None:
    from decord import VideoReader

    req = [9, 2, 2, 20]
    direct = VideoReader(str(video)).get_batch(req).asnumpy()
    assert np.array_equal(VideoFrameSource().read(str(video), np.array(req)), direct)


def test_video_resize_and_empty_request(video: Path) -> None:
    # 16 and 48 hit a decord scaler bug ("DECORDArrayCopyFromTo"): PIL fallback, same result
    for size in (32, 20, 16, 48):
        frames = VideoFrameSource(size=size).read(str(video), [3, 10, 3])
        assert frames.shape == (3, size, size, 3)
        assert decoded_levels(frames) == [3, 10, 3]
    assert VideoFrameSource(size=16).read(str(video), []).shape == (0, 16, 16, 3)
    empty = VideoFrameSource().read(str(video), [])
    assert empty.shape == (0, SIDE, SIDE, 3)
    with pytest.raises(FrameSourceError, match="size"):
        VideoFrameSource(size=0)


def test_video_errors_name_the_clip(video: Path, tmp_path: Path) -> None:
    src = VideoFrameSource()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    cases = [
        (tmp_path / "missing.mp4", [0], "missing file"),
        (empty, [0], "empty file"),
        (garbage, [0], "corrupt or undecodable"),
        (tmp_path, [0], "found a folder"),
        (video, [0, N_FRAMES], f"index {N_FRAMES} out of range"),
        (video, [-1, 2], "index -1 out of range"),
    ]
    for path, req, reason in cases:
        with pytest.raises(FrameReadError) as info:
            src.read(str(path), req, clip_id="clip-042")
        err = info.value
        assert isinstance(err, EmobenchError)
        assert err.clip_id == "clip-042" and err.path == str(path)
        assert reason in err.reason
        assert "'clip-042'" in str(err) and reason in str(err)
    with pytest.raises(FrameReadError, match="missing file"):
        src.count(str(tmp_path / "missing.mp4"), clip_id="x")
    with pytest.raises(FrameReadError, match="integers"):
        src.read(str(video), [1.5, 2.0])


# --- folders ----------------------------------------------------------------------------


def write_folder(folder: Path, names: list[str], values: list[int], mode: str = "RGB") -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, v in zip(names, values, strict=True):
        fill = v if mode == "L" else (v, v, v)
        Image.new(mode, (20, 16), fill).save(folder / name)
    return folder


def test_folder_numeric_order_png(tmp_path: Path) -> None:
    # written in shuffled order; lexicographic order would put 10, 11, 12 before 2
    nums = [7, 12, 1, 10, 3, 2, 11, 4, 9, 5, 8, 6]
    folder = write_folder(tmp_path / "c1", [f"{k}.png" for k in nums], [10 * k for k in nums])
    src = FolderFrameSource()
    assert src.count(str(folder)) == 12
    assert src.frame_numbers(str(folder)) == list(range(1, 13))
    frames = src.read(str(folder), [0, 9, 11, 1, 1])
    assert frames.shape == (5, 16, 20, 3)
    # frame index i is the file numbered i+1; PNG is lossless so values are exact
    assert frames[:, 0, 0, 0].tolist() == [10, 100, 120, 20, 20]


def test_folder_jpeg_greyscale_and_resize(tmp_path: Path) -> None:
    # SAMM-style greyscale JPEGs named <subject>_<frame>.jpg, frames numbered from 5
    names = [f"006_{k:04d}.jpg" for k in (5, 6, 7, 8)]
    folder = write_folder(tmp_path / "006_1_2", names, [40, 90, 140, 190], mode="L")
    src = FolderFrameSource()
    frames = src.read(str(folder), [3, 0])
    assert frames.shape == (2, 16, 20, 3)  # greyscale -> 3 channels
    assert np.allclose(frames.reshape(2, -1).mean(axis=1), [190, 40], atol=2)
    assert src.frame_numbers(str(folder)) == [5, 6, 7, 8]
    small = FolderFrameSource(size=8).read(str(folder), [1])
    assert small.shape == (1, 8, 8, 3)
    assert abs(float(small.mean()) - 90) <= 2


def test_frame_number_parsing() -> None:
    assert frame_number("12.jpg") == 12
    assert frame_number("img10.jpg") == 10
    assert frame_number("reg_img3.jpg") == 3
    assert frame_number("006_1_2_0123.jpg") == 123
    assert frame_number("cover.jpg") is None


def test_folder_casme_names(tmp_path: Path) -> None:
    nums = [46, 100, 47, 9, 250]
    folder = write_folder(tmp_path / "EP02_01f", [f"reg_img{k}.jpg" for k in nums], [50] * 5)
    assert FolderFrameSource().frame_numbers(str(folder)) == [9, 46, 47, 100, 250]


def test_folder_sees_new_files(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "grow", ["1.png", "2.png"], [1, 2])
    src = FolderFrameSource()
    assert src.count(str(folder)) == 2
    import os

    write_folder(folder, ["3.png"], [3])
    os.utime(folder, ns=(0, os.stat(folder).st_mtime_ns + 10**9))  # coarse-mtime filesystems
    assert src.count(str(folder)) == 3


def test_folder_errors(tmp_path: Path) -> None:
    src = FolderFrameSource()
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    bad = write_folder(tmp_path / "bad", ["1.png", "2.png"], [1, 2])
    (bad / "3.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 999, np.uint8).tobytes())
    nonum = write_folder(tmp_path / "nonum", ["1.png", "cover.png"], [1, 2])
    mixed = write_folder(tmp_path / "mixed", ["1.png"], [1])
    from PIL import Image

    Image.new("RGB", (8, 8)).save(mixed / "2.png")
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"x")
    cases = [
        (tmp_path / "missing", [0], "missing folder"),
        (tmp_path / "empty", [0], "no images"),
        (tmp_path / "notes", [0], "no images"),
        (bad, [2], "cannot decode image '3.jpg'"),
        (bad, [0, 5], "index 5 out of range"),
        (nonum, [0], "'cover.png' has no frame number"),
        (mixed, [0, 1], "differ in size"),
        (a_file, [0], "found a file"),
    ]
    for path, req, reason in cases:
        with pytest.raises(FrameReadError) as info:
            src.read(str(path), req, clip_id="s01/EP01")
        assert info.value.clip_id == "s01/EP01"
        assert reason in str(info.value)
        assert "'s01/EP01'" in str(info.value)
    # with a resize, frames of different sizes stack fine
    assert FolderFrameSource(size=4).read(str(mixed), [0, 1]).shape == (2, 4, 4, 3)


# --- registry and clip-index rows -------------------------------------------------------


def test_open_source_registry() -> None:
    assert isinstance(open_source("video"), VideoFrameSource)
    assert isinstance(open_source("frames", size=16), FolderFrameSource)
    assert open_source("frames", size=16).size == 16
    assert isinstance(open_source("video"), FrameSource)
    assert set(FRAME_SOURCES) == {"video", "frames"}
    with pytest.raises(FrameSourceError, match="audio"):
        open_source("audio")


def test_read_clip(video: Path, tmp_path: Path) -> None:
    row = {"clip_id": "v1", "path": str(video), "media": "video", "label": "happiness"}
    assert decoded_levels(read_clip(row, [4, 2])) == [4, 2]
    assert read_clip(row, [4], size=16).shape == (1, 16, 16, 3)
    folder = write_folder(tmp_path / "f", ["img1.png", "img2.png"], [30, 60])
    frames = read_clip({"clip_id": "f1", "path": str(folder), "media": "frames"}, [1])
    assert frames[0, 0, 0].tolist() == [60, 60, 60]
    with pytest.raises(FrameReadError, match="'v2'.*missing file"):
        read_clip({**row, "clip_id": "v2", "path": str(tmp_path / "nope.mp4")}, [0])
    with pytest.raises(FrameReadError, match="'v3'.*unknown media"):
        read_clip({**row, "clip_id": "v3", "media": "hologram"}, [0])
    with pytest.raises(FrameReadError, match="'v4'.*lacks"):
        read_clip({"clip_id": "v4", "media": "video"}, [0])


def test_centre_crop_by_hand():
    from emobench.video.frames import centre_crop

    frames = np.arange(2 * 6 * 8 * 3).reshape(2, 6, 8, 3)
    np.testing.assert_array_equal(centre_crop(frames, 4), frames[:, 1:5, 2:6])
    assert centre_crop(frames, 0) is frames and centre_crop(frames, 6) is frames
    np.testing.assert_array_equal(centre_crop(frames[0], 2), frames[0, 2:4, 3:5])
