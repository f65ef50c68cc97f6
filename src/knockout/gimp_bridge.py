"""The core's side of the GIMP plug-in: layer pixels in, the pixels to write back out.

The plug-in (``gimp_plugin/plug-ins/knockout-backdrop``) only moves bytes between GIMP
and this module, either in-process (``knock_out`` called from GIMP's Python) or through
``python -m knockout.gimp_bridge REQUEST.json`` run with the interpreter that
``knockout gimp install`` recorded. Both ways run :func:`knock_out`, so both give the
result of ``knockout cut``: the same :func:`knockout.cutout.cut_out` on the same 8-bit pixels.

Request file (JSON), for the subprocess: ``width``, ``height``, ``sample`` (``u8``, ``u16``
or ``float``), ``output`` (``mask``, ``alpha`` or ``layer``), ``settings`` (a mapping of
:class:`~knockout.settings.Settings` keys), ``input`` and ``result`` (paths of raw pixel
files). The bridge writes the result pixels to ``result`` and one JSON line to stdout;
on a bad input it prints ``knockout: error: REASON`` to stderr and exits with 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .cutout import cut_out
from .settings import Settings, SettingsError

__all__ = ["Bridged", "knock_out"]

#: numpy dtype of each GEGL sample type the plug-in reads ("R'G'B'A u8", "R'G'B'A u16", "R'G'B'A float")
SAMPLES = {"u8": np.dtype(np.uint8), "u16": np.dtype(np.uint16), "float": np.dtype(np.float32)}
OUTPUTS = ("mask", "alpha", "layer")


@dataclass(frozen=True)
class Bridged:
    """What the plug-in writes back.

    Attributes
    ----------
    data : bytes
        ``mask``: one ``Y`` (linear) sample per pixel, the matte. ``alpha`` and ``layer``:
        ``R'G'B'A`` samples, the subject's colours (decontaminated where the core changed
        them, the layer's own values elsewhere) and the layer's alpha times the matte.
        Samples are of the request's ``sample`` type, row-major.
    tolerance : float
        The colour tolerance the core used (the automatic one when ``tolerance`` is auto).
    """

    data: bytes
    tolerance: float


def _to_u8(rgba: np.ndarray) -> np.ndarray:
    if rgba.dtype == np.uint8:
        return rgba
    if rgba.dtype == np.uint16:
        return (rgba >> 8).astype(np.uint8)  # as knockout.imageio reads 16-bit files
    return np.clip(np.round(rgba * 255), 0, 255).astype(np.uint8)


def _from_u8(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return values.astype(np.uint8)
    if dtype == np.uint16:
        return values.astype(np.uint16) * 257
    return values.astype(np.float32) / 255


def knock_out(
    pixels: bytes | np.ndarray, *, width: int, height: int, sample: str, output: str, settings: Settings
) -> Bridged:
    """Cut out a layer region read from GIMP.

    Parameters
    ----------
    pixels : bytes or ndarray
        ``R'G'B'A`` samples of type ``sample``, row-major, ``height * width * 4`` of them.
    width, height : int
        Size of the region in pixels (at least 2x2).
    sample : {'u8', 'u16', 'float'}
        Sample type: 8-bit images are read as ``u8``, 16-bit as ``u16``, all others as
        ``float`` (sRGB-encoded, 0-1).
    output : {'mask', 'alpha', 'layer'}
        ``mask`` returns the matte alone (for a layer mask); ``alpha`` and ``layer`` return
        the cut-out in the layer's own precision.
    settings : Settings
        The core's settings; ``output`` and ``crop`` are ignored (GIMP keeps the layer's size).

    Returns
    -------
    Bridged

    Raises
    ------
    ValueError
        For a wrong sample type, output or buffer size, and when the core rejects the image.
    """
    if sample not in SAMPLES:
        raise ValueError(f"sample {sample!r} is not supported; use one of: {', '.join(SAMPLES)}")
    if output not in OUTPUTS:
        raise ValueError(f"output {output!r} is not supported; use one of: {', '.join(OUTPUTS)}")
    dtype = SAMPLES[sample]
    flat = np.frombuffer(pixels, dtype=dtype) if isinstance(pixels, (bytes, bytearray, memoryview)) else pixels
    if flat.size != width * height * 4:
        raise ValueError(f"got {flat.size} samples for a {width}x{height} RGBA region, expected {width * height * 4}")
    rgba = np.asarray(flat, dtype=dtype).reshape(height, width, 4)
    rgba8 = _to_u8(rgba)
    settings = settings.replace(output="rgba", crop=False)
    res = cut_out(np.ascontiguousarray(rgba8[..., :3]), settings=settings)
    tolerance = float(res.segmentation.tolerance)
    if output == "mask":
        return Bridged(data=_from_u8(res.alpha, dtype).tobytes(), tolerance=tolerance)
    out = rgba.copy()
    colors = res.pixels[..., :3]
    changed = np.any(colors != rgba8[..., :3], axis=-1)  # decontaminated edge pixels
    out[..., :3][changed] = _from_u8(colors[changed], dtype)
    if dtype == np.uint8:
        a = (res.alpha.astype(np.uint16) * rgba[..., 3] + 127) // 255  # as knockout.compose combines alphas
    elif dtype == np.uint16:
        a = (res.alpha.astype(np.uint32) * rgba[..., 3] + 127) // 255
    else:
        a = res.alpha.astype(np.float32) / 255 * rgba[..., 3]
    out[..., 3] = a
    return Bridged(data=out.tobytes(), tolerance=tolerance)


def _run_request(request: Mapping[str, Any]) -> dict[str, Any]:
    try:
        width, height = int(request["width"]), int(request["height"])
        sample, output = str(request["sample"]), str(request["output"])
        src, dst = Path(request["input"]), Path(request["result"])
        settings_map = request.get("settings") or {}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed request: {exc!r}; it needs width, height, sample, output, input, result") from None
    settings = Settings.from_mapping(settings_map, where="GIMP plug-in settings")
    data = src.read_bytes()
    res = knock_out(data, width=width, height=height, sample=sample, output=output, settings=settings)
    dst.write_bytes(res.data)
    return {"tolerance": res.tolerance, "bytes": len(res.data)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m knockout.gimp_bridge REQUEST.json``: run one request; 0 on success, 1 on error."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m knockout.gimp_bridge REQUEST.json (written by the GIMP plug-in)", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
        result = _run_request(request)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"knockout: error: {path}: cannot read the request: {exc}", file=sys.stderr)
        return 1
    except (SettingsError, ValueError) as exc:
        print(f"knockout: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
