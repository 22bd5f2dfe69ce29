"""The one place where images are opened: sizes, EXIF orientation, decoding, modes.

Dataset loading, prediction and drawing all go through here, so every part of
the library agrees on which way is up and on the size of an image.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from yolo2retina.errors import ConfigError, ImageReadError
from yolo2retina.image_header import header_hw

if TYPE_CHECKING:  # torch loads in image_to_tensor: reading sizes and decoding need none
    from torchvision import tv_tensors

__all__ = [
    "IMAGE_EXTENSIONS",
    "exif_orientation",
    "find_images",
    "image_to_tensor",
    "load_image",
    "read_image_hw",
    "reduced_size",
    "upright",
]

#: File extensions treated as images when a folder is scanned (lower case).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm"}
)

_ORIENTATION_TAG = 0x0112
#: Formats whose decoder can shrink while decoding (``Image.draft``); MPO is a phone JPEG.
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
#: The divisor of :func:`image_to_tensor` (float32, so the division is float32).
_BYTE_MAX = np.float32(255.0)
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _open(path: str | os.PathLike[str]) -> Image.Image:
    """``Image.open`` for regular files only, every failure an :class:`ImageReadError`.

    A FIFO, device or folder is refused before it is opened (opening a FIFO would block
    until something writes to it). Pillow's ``DecompressionBombError`` (an image of more
    than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels) is refused here too; its
    ``DecompressionBombWarning`` (between one and two times the limit) stays a warning.
    """
    _check_regular(path)
    return _pillow_open(path)


def _pillow_open(path: str | os.PathLike[str]) -> Image.Image:
    """``Image.open`` of a path :func:`_check_regular` accepted, every failure an
    :class:`ImageReadError`."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: image file not found") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: {_bomb_message(e)}") from None
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read image: {e}") from None


def _check_regular(path: str | os.PathLike[str]) -> None:
    """Refuse a missing file, a folder, FIFO or device before it is opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageReadError(f"{path}: image file not found") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise ImageReadError(f"{path}: cannot read image: {e}") from None
    if not stat.S_ISREG(mode):
        raise ImageReadError(f"{path}: not a regular file (a folder, FIFO or device); not opened")


def _bomb_message(e: Exception) -> str:
    return (
        f"refused as a possible decompression bomb ({e}); if the image is genuine, raise "
        "PIL.Image.MAX_IMAGE_PIXELS"
    )


def _header_is_upright(img: Image.Image) -> bool:
    """Whether Pillow already reports the size after EXIF orientation (its TIFF plugin does)."""
    if img.format != "TIFF":
        return False
    tags = getattr(img, "tag_v2", None)
    try:
        stored_wh = (int(tags[256]), int(tags[257]))  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return False
    return img.size != stored_wh


def _orientation_left(img: Image.Image, before: int) -> int:
    """The EXIF orientation still to apply after ``img.load()``.

    Pillow's TIFF plugin transposes while loading and then deletes the tag; applying
    ``before`` again would rotate twice. Other formats load pixels as stored.
    """
    if before != 1 and img.format == "TIFF" and exif_orientation(img) == 1:
        return 1
    return before


def exif_orientation(img: Image.Image) -> int:
    """EXIF orientation (1..8) read from the already-parsed header; 1 when absent or invalid.

    Only header data is used: nothing is decoded.
    """
    try:
        if img.format in ("JPEG", "MPO", "TIFF", "WEBP"):
            value = img.getexif().get(_ORIENTATION_TAG, 1)
        else:  # e.g. PNG: only an eXIf chunk seen before the pixel data counts
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
            value = exif.get(_ORIENTATION_TAG, 1)
    except Exception:  # a malformed EXIF block must not make the image unusable
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def read_image_hw(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` of an image after EXIF orientation, from its header only.

    Raises:
        ImageReadError: missing, not a regular file, unreadable, not an image, or larger
            than Pillow's decompression-bomb limit.
    """
    _check_regular(path)
    hw = header_hw(path)
    if hw is not None:
        return hw
    with _pillow_open(path) as img:
        w, h = img.size
        if exif_orientation(img) in (5, 6, 7, 8) and not _header_is_upright(img):
            w, h = h, w
    if w <= 0 or h <= 0:
        raise ImageReadError(f"{path}: image has an empty size {w}x{h}")
    return int(h), int(w)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        a8 = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a8, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (0, 0, 0))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")


def reduced_size(size_wh: tuple[int, int], max_size: int) -> tuple[int, int]:
    """``(width, height)`` shrunk so the longer side is ``max_size`` (unchanged if already smaller).

    This is the size :func:`load_image` returns for ``max_size``; box scaling uses
    the same numbers, so boxes and pixels always agree.
    """
    w, h = size_wh
    if max(w, h) <= max_size:
        return int(w), int(h)
    scale = max_size / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def upright(img: Image.Image) -> Image.Image:
    """An in-memory PIL image as upright RGB.

    An image straight from ``Image.open`` (``img.format`` is set) still has its pixels
    as stored, so its EXIF orientation is applied. A derived image (``format`` is
    ``None``: after ``ImageOps.exif_transpose``, ``convert``, ``copy``, a crop ...) is
    taken as already upright. The mode is converted to 8-bit RGB.
    """
    orientation = 1
    if img.format is not None:
        orientation = exif_orientation(img)
        img.load()
        orientation = _orientation_left(img, orientation)
    out = _to_rgb(img)
    if orientation in _TRANSPOSE:
        out = out.transpose(_TRANSPOSE[orientation])
    return out


def load_image(path: str | os.PathLike[str], *, max_size: int | None = None) -> Image.Image:
    """Decode an image as upright RGB.

    EXIF orientation is applied exactly once (all 8 cases; JPEG, PNG, WebP and TIFF,
    whose Pillow plugin transposes by itself), and RGBA, P, L, CMYK and 16-bit images
    are converted to 8-bit RGB (transparent pixels become black).

    Args:
        path: image file.
        max_size: when given and the image's longer side is larger, the image is
            shrunk so its longer side equals ``max_size``. JPEGs are decoded at a
            reduced scale first (PIL ``draft``), then resized exactly, so the result
            has the same size as a full decode followed by the resize.

    Raises:
        ImageReadError: the file is missing, not a regular file, unreadable, truncated,
            corrupt, or larger than Pillow's decompression-bomb limit.
    """
    if max_size is not None and max_size < 1:
        raise ConfigError(f"max_size must be >= 1, got {max_size}")
    img = _open(path)
    try:
        orientation = exif_orientation(img)
        stored_w, stored_h = img.size
        target_wh: tuple[int, int] | None = None
        if max_size is not None and max(stored_w, stored_h) > max_size:
            target_wh = reduced_size((stored_w, stored_h), max_size)
            if img.format in _DRAFT_FORMATS:
                # libjpeg scales by 1/2, 1/4 or 1/8 while decoding; draft picks the
                # smallest scale that is still >= target_wh, the resize below is exact.
                img.draft("RGB", target_wh)
        img.load()
        left = _orientation_left(img, orientation)
        if left != orientation and max_size is not None:  # the plugin transposed the pixels
            target_wh = reduced_size(img.size, max_size) if max(img.size) > max_size else None
        orientation = left
        out = _to_rgb(img)
        if target_wh is not None and out.size != target_wh:
            out = out.resize(target_wh, Image.Resampling.BILINEAR, reducing_gap=None)
        if orientation in _TRANSPOSE:
            out = out.transpose(_TRANSPOSE[orientation])
    except Image.DecompressionBombError as e:
        img.close()
        raise ImageReadError(f"{Path(path)}: {_bomb_message(e)}") from None
    except (OSError, ValueError, SyntaxError) as e:
        img.close()
        raise ImageReadError(
            f"{Path(path)}: cannot decode image (truncated or corrupt): {e}"
        ) from None
    if out is not img:
        img.close()  # the decoded copy lives on; release the file handle now
    return out


def image_to_tensor(img: Image.Image) -> tv_tensors.Image:
    """An RGB PIL image -> ``tv_tensors.Image`` ``(3, H, W) float32`` in ``[0, 1]``, contiguous.

    Values are ``uint8 / 255`` rounded once in float32, bit for bit those of
    ``torch.from_numpy(a).permute(2, 0, 1).to(torch.float32).div_(255)``. Other modes go
    through the same conversion to RGB as :func:`load_image`.

    One float32 allocation, filled band by band: each 8-bit band (``Image.split``) is a
    contiguous plane that NumPy divides straight into its channel of the output. The
    former ``HWC uint8 copy -> permute -> float -> divide`` path cost a second copy and
    a strided float conversion (``bench/predict_speed.py`` measures both). The only
    function here that needs torch; it imports torch and torchvision on first use.
    """
    import torch
    from torchvision import tv_tensors

    rgb = _to_rgb(img)
    w, h = rgb.size
    out = np.empty((3, h, w), dtype=np.float32)
    for c, band in enumerate(rgb.split()):
        np.divide(np.asarray(band, dtype=np.uint8), _BYTE_MAX, out=out[c], dtype=np.float32)
    return tv_tensors.Image(torch.from_numpy(out))


def find_images(source: str | os.PathLike[str]) -> list[Path]:
    """The image files named by ``source``: a file, a folder (recursively) or a glob pattern.

    Folders and globs keep files with an :data:`IMAGE_EXTENSIONS` extension, sorted; a
    single file is returned as given (so a wrongly named image is still tried and
    reported).

    Raises:
        ImageReadError: nothing matches.
    """
    p = Path(source).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        found = [f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    else:
        found = [
            Path(f)
            for f in glob.glob(os.path.expanduser(str(source)), recursive=True)
            if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_EXTENSIONS
        ]
    if not found:
        what = "folder" if p.is_dir() else "file or pattern"
        raise ImageReadError(
            f"{source}: no images found ({what}; extensions {sorted(IMAGE_EXTENSIONS)})"
        )
    return sorted(found)
