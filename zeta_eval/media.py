"""Saving and reading generated media: images as PNG, videos as MP4 (H.264), frame strips as PNG for reports.

Media tensors are float in [0, 1]: an image is (3, H, W), a video (F, 3, H, W). Non-finite values are written as
black (the pipeline flags non-finite media in its rows before saving); values outside [0, 1] are clipped.

Every file is written atomically (:func:`zeta_eval.parts.atomic_write`): a full disk or a kill never leaves a 0-byte
or partial file under the final name. A PNG records the sample it belongs to (``owner``, a text chunk); writing a
PNG for another sample over it is refused. A failed write raises :class:`MediaWriteError` (one line).
"""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from PIL import Image

from .identity import safe_name
from .parts import atomic_write

if TYPE_CHECKING:
    import pyarrow as pa


def to_uint8(media: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [0, 1] -> (..., H, W, 3) uint8 (NaN -> 0)."""
    if not isinstance(media, torch.Tensor):
        raise ValueError(f"expected a torch tensor, got {type(media).__name__}")
    if media.ndim < 3 or media.shape[-3] != 3:
        raise ValueError(f"expected (..., 3, H, W) media, got shape {tuple(media.shape)}")
    x = torch.nan_to_num(media.detach().to("cpu", torch.float32), nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)
    x = (x * 255).round().to(torch.uint8)
    return x.movedim(-3, -1).contiguous().numpy()


#: the PNG text chunk that names the sample a file belongs to
OWNER_KEY = "zeta_eval_sample_id"


class MediaWriteError(OSError):
    """A media file could not be written (full disk, read-only folder) or belongs to another sample; one line."""


def _parent(path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MediaWriteError(err.errno, f"cannot create the media folder {path.parent}: {err.strerror or err}") from err
    return path


def media_owner(path: str | os.PathLike) -> str | None:
    """The sample a PNG written here belongs to (None: no such file, not a PNG, or written without an owner)."""
    try:
        with Image.open(path) as img:
            return getattr(img, "text", {}).get(OWNER_KEY)
    except (OSError, ValueError, SyntaxError):  # missing, partial or not an image: nobody's
        return None


def check_owner(path: str | os.PathLike, owner: str | None) -> None:
    """Refuse to replace a PNG that belongs to another sample (two samples must never share a file)."""
    if owner is None:
        return
    current = media_owner(path)
    if current is not None and current != owner:
        raise MediaWriteError(17, f"refusing to overwrite {path}: it belongs to sample {current}, not {owner}")


def _write(path: Path, write) -> Path:
    try:
        atomic_write(path, write)
    except MediaWriteError:
        raise
    except OSError as err:
        raise MediaWriteError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
    return path


def save_image(image: torch.Tensor, path: str | os.PathLike, owner: str | None = None) -> Path:
    """Write a (3, H, W) image in [0, 1] as PNG, atomically; ``owner`` (a sample id) is recorded in the file and an
    existing file of another owner is never replaced."""
    from PIL.PngImagePlugin import PngInfo

    if image.ndim != 3:
        raise ValueError(f"save_image expects (3, H, W), got shape {tuple(image.shape)}")
    path = _parent(path)
    check_owner(path, owner)
    info = PngInfo()
    if owner is not None:
        info.add_text(OWNER_KEY, owner)
    pixels = Image.fromarray(to_uint8(image))
    return _write(path, lambda tmp: pixels.save(tmp, format="PNG", pnginfo=info))


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """A PNG (or any PIL-readable image) as (3, H, W) float in [0, 1]."""
    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def read_media(path: str | os.PathLike) -> torch.Tensor:
    """A saved sample: a PNG as (3, H, W), an MP4 as (F, 3, H, W), float in [0, 1]."""
    return read_video(path) if Path(path).suffix.lower() == ".mp4" else read_image(path)


def _even(frames: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sizes: repeat the last row / column where a size is odd."""
    _, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def save_video(video: torch.Tensor, path: str | os.PathLike, fps: int = 8, quality: int = 8) -> Path:
    """Write a (F, 3, H, W) video in [0, 1] as an H.264 MP4 (yuv420p; odd sizes padded by one pixel).

    ``quality``: imageio-ffmpeg's 0-10 scale (10 = best).
    """
    import imageio.v2 as imageio

    if video.ndim != 4:
        raise ValueError(f"save_video expects (F, 3, H, W), got shape {tuple(video.shape)}")
    if not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    path = _parent(path)
    frames = _even(to_uint8(video))

    def write(tmp: Path) -> None:
        writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=quality,
                                    pixelformat="yuv420p", macro_block_size=1)
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()

    return _write(path, write)


def read_video(path: str | os.PathLike) -> torch.Tensor:
    """An MP4 as (F, 3, H, W) float in [0, 1]."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        frames = [np.asarray(f) for f in reader]
    finally:
        reader.close()
    if not frames:
        raise ValueError(f"{path}: no frames")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


def frame_indices(num_frames: int, max_frames: int) -> list[int]:
    """Up to ``max_frames`` evenly spaced frame indices, first and last included."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    if max_frames == 1:
        return [0]
    return [round(i * (num_frames - 1) / (max_frames - 1)) for i in range(max_frames)]


def frame_strip(video: torch.Tensor, max_frames: int = 8, gap: int = 2) -> torch.Tensor:
    """Evenly spaced frames of a (F, 3, H, W) video side by side: (3, H, k W + (k - 1) gap), white gaps."""
    if video.ndim != 4:
        raise ValueError(f"frame_strip expects (F, 3, H, W), got shape {tuple(video.shape)}")
    if max_frames < 1 or gap < 0:
        raise ValueError("max_frames must be >= 1 and gap >= 0")
    idx = frame_indices(video.shape[0], max_frames)
    parts: list[torch.Tensor] = []
    for n, i in enumerate(idx):
        if n and gap:
            parts.append(torch.ones(3, video.shape[2], gap, dtype=video.dtype, device=video.device))
        parts.append(video[i])
    return torch.cat(parts, dim=-1)


def save_frame_strip(video: torch.Tensor, path: str | os.PathLike, max_frames: int = 8, gap: int = 2,
                     owner: str | None = None) -> Path:
    """Write :func:`frame_strip` of a video as PNG (``owner`` as in :func:`save_image`)."""
    return save_image(frame_strip(video, max_frames, gap), path, owner=owner)


def save_media(media: torch.Tensor, path: str | os.PathLike, fps: int = 8) -> Path:
    """An image (3, H, W) as PNG or a video (F, 3, H, W) as MP4; the suffix of ``path`` must match."""
    suffix = Path(path).suffix.lower()
    if media.ndim == 3:
        if suffix != ".png":
            raise ValueError(f"an image is saved as .png, got {path}")
        return save_image(media, path)
    if media.ndim == 4:
        if suffix != ".mp4":
            raise ValueError(f"a video is saved as .mp4, got {path}")
        return save_video(media, path, fps=fps)
    raise ValueError(f"expected an image (3, H, W) or a video (F, 3, H, W), got shape {tuple(media.shape)}")


# ---------------------------------------------------------------------------------------------- verification
#: what :func:`media_check` finds: the row's files are in place and its own, or why not
MEDIA_OK, MEDIA_MISSING, MEDIA_FOREIGN, MEDIA_UNREADABLE = "ok", "missing", "foreign", "unreadable"


def media_check(out_dir: str | os.PathLike, row: dict) -> str | None:
    """Whether the media of a stored row (``media_path``, ``media_strip_path``, relative to ``out_dir``) are in place
    and belong to it: :data:`MEDIA_OK`, :data:`MEDIA_MISSING`, :data:`MEDIA_FOREIGN` (the PNG records another
    sample) or :data:`MEDIA_UNREADABLE` (not a readable image); None for a row without media.

    An image is checked through the sample id its PNG records, a video through its frame strip (and the MP4 must
    exist). A PNG written without an owner (by another tool) cannot be told apart and passes.
    """
    if not row.get("media_path"):
        return None
    out = Path(out_dir)
    path = out / row["media_path"]
    if not path.is_file():
        return MEDIA_MISSING
    png = path if path.suffix.lower() == ".png" else out / row["media_strip_path"] if row.get("media_strip_path") else None
    if png is None:
        return MEDIA_OK if path.stat().st_size > 0 else MEDIA_UNREADABLE
    if not png.is_file():
        return MEDIA_MISSING
    try:
        with Image.open(png) as img:
            owner = getattr(img, "text", {}).get(OWNER_KEY)
    except (OSError, ValueError, SyntaxError):
        return MEDIA_UNREADABLE
    return MEDIA_OK if owner is None or owner == row.get("sample_id") else MEDIA_FOREIGN


def check_rows_media(out_dir: str | os.PathLike, rows: Sequence[dict]) -> list[str | None]:
    """:func:`media_check` of every row, in order."""
    return [media_check(out_dir, row) for row in rows]


def describe_media_problems(checks: Sequence[str | None]) -> str | None:
    """``"3 media files missing, 1 of another sample"`` for a list of checks, or None when every file is in place."""
    counts = {kind: sum(1 for c in checks if c == kind) for kind in (MEDIA_MISSING, MEDIA_FOREIGN, MEDIA_UNREADABLE)}
    if not any(counts.values()):
        return None
    words = {MEDIA_MISSING: "missing", MEDIA_FOREIGN: "belonging to another sample", MEDIA_UNREADABLE: "unreadable"}
    return ", ".join(f"{n} {words[kind]}" for kind, n in counts.items() if n)


#: whether this command has already warned about media files (each command runs in its own context: cli.main)
_warned: contextvars.ContextVar[bool] = contextvars.ContextVar("zeta_eval_media_warned", default=False)


def warn_about_media(message: str, *args: object) -> None:
    """Log a warning about missing or foreign media files, once per command (``score`` then writes the report: the
    report does not say it again)."""
    import logging

    if not _warned.get():
        _warned.set(True)
        logging.getLogger("zeta_eval").warning(message, *args)


def mark_media(out_dir: str | os.PathLike, table: "pa.Table") -> "pa.Table":
    """``table`` (a run's rows) with a ``media_check`` column (:func:`media_check` of each row) and one warning line
    when any file is missing, unreadable or another sample's."""
    import pyarrow as pa

    columns = [c for c in ("sample_id", "media_path", "media_strip_path") if c in table.column_names]
    checks = check_rows_media(out_dir, table.select(columns).to_pylist()) if "media_path" in columns else \
        [None] * table.num_rows
    problems = describe_media_problems(checks)
    if problems is not None:
        warn_about_media("%s: %d samples' media files are %s (their rows say so in samples.parquet's media_check "
                         "column); run predict with the same config to generate them again", out_dir,
                         sum(1 for c in checks if c not in (None, MEDIA_OK)), problems)
    if "media_check" in table.column_names:
        table = table.drop_columns(["media_check"])
    return table.append_column("media_check", pa.array(checks, pa.string()))


def move_foreign(out_dir: str | os.PathLike, row: dict) -> None:
    """Move the files of a row whose PNG belongs to another sample to ``OUT_DIR/foreign_media/`` (kept for inspection,
    out of the way of the row's own files, which are written again)."""
    out = Path(out_dir)
    for rel in (row.get("media_path"), row.get("media_strip_path")):
        if rel and (out / rel).is_file():
            target = out / "foreign_media" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(out / rel, target)
            except FileNotFoundError:  # another rank moved it first
                pass


@dataclass(frozen=True)
class SampleMedia:
    """The files of one generated sample, ready to be written (now, or later by the background writer).

    ``pixels``: a CPU float tensor in [0, 1], an image (3, H, W) or a video (F, 3, H, W). An image becomes the PNG
    ``path``; a video the MP4 ``path`` plus the frame-strip PNG ``strip`` that reports show. ``owner`` (the sample id)
    is recorded in each PNG; a file of another owner is never replaced (an MP4 is checked through its strip).
    """

    pixels: torch.Tensor
    path: Path
    owner: str
    strip: Path | None = None
    fps: int = 8

    def write(self) -> None:
        if self.strip is None:
            save_image(self.pixels, self.path, owner=self.owner)
            return
        check_owner(self.strip, self.owner)
        save_video(self.pixels, self.path, fps=self.fps)
        save_frame_strip(self.pixels, self.strip, owner=self.owner)


__all__: Sequence[str] = ["MediaWriteError", "SampleMedia", "check_owner", "check_rows_media", "describe_media_problems",
                          "mark_media", "media_check", "move_foreign", "read_media", "frame_indices", "frame_strip",
                          "media_owner", "read_image", "read_video", "save_frame_strip", "save_image", "save_media",
                          "save_video", "to_uint8"]


def media_names(key: str, records: Sequence[Any], ids: Sequence[str], video: bool) -> list[tuple[str, str | None]]:
    """Per record, the media file and (videos) frame strip of its sample, relative to the output folder:
    ``media/<sampler key>/<prompt set>/<prompt_id>_seed<seed>[_<sample index>]-<sample_id[:8]>.png`` (``.mp4`` and
    ``_strip.png`` for videos). The readable prompt id and seed plus the first 8 hex digits of the sample id make the
    name unique per sample even when ids sanitise alike (``a/b``, ``a_b``) or a prompt was edited."""
    folder = Path("media") / key / safe_name(records[0].prompt_set)
    names: list[tuple[str, str | None]] = []
    for rec, sid in zip(records, ids):
        stem = (f"{safe_name(rec.prompt_id)}_seed{rec.seed}" + (f"_{rec.sample_index}" if rec.sample_index else "")
                + f"-{sid[:8]}")
        rel = folder / f"{stem}.{'mp4' if video else 'png'}"
        names.append((rel.as_posix(), (folder / f"{stem}_strip.png").as_posix() if video else None))
    return names
