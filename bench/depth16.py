"""What ``--depth 16`` (the matte in float on the 16-bit pixels) costs against the default 8-bit output.

``python bench/depth16.py [--repeat 3] [--size 1600x1200]``: a synthetic 16-bit RGB PNG headshot (a
soft-edged head and shoulders, a backdrop gradient finer than 8 bits), cut out by ``knockout cut IN
OUT.png`` and ``knockout cut IN OUT.png --depth 16`` as whole processes (imports included), alternated;
prints the medians of wall time and of the child's peak memory, and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np


def png16(rgb: np.ndarray) -> bytes:
    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def headshot16(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / 0.25, (yy - 0.42 * h) / 0.3) * 0.3
    inside = np.clip((0.3 * h - r) / (0.01 * h) + 0.5, 0, 1)
    inside = np.maximum(inside, ((yy > 0.75 * h) & (np.abs(xx - w / 2) < 0.42 * w)).astype(np.float32))
    backdrop = np.array([120, 150, 200], np.float32) * 257 + (yy / h * 300)[..., None]
    skin = np.array([200, 150, 120], np.float32) * 257
    img = inside[..., None] * skin + (1 - inside[..., None]) * backdrop
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


_PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one process, run under a fresh parent that reads its peak."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _PEAK, *cmd], check=True, capture_output=True, text=True)
    return time.perf_counter() - t, int(r.stdout.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", default="1600x1200", help="HxW of the synthetic photo")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    exe = [sys.executable, "-m", "knockout"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "deep.png"
        src.write_bytes(png16(headshot16(h, w)))
        times: dict[int, list[float]] = {8: [], 16: []}
        peaks: dict[int, list[float]] = {8: [], 16: []}
        for _ in range(args.repeat):
            for depth in (8, 16):
                out = Path(tmp) / f"o{depth}.png"
                extra = ["--depth", "16"] if depth == 16 else []
                wall, peak = run([*exe, "cut", str(src), str(out), "--overwrite", "-q", *extra])
                times[depth].append(wall)
                peaks[depth].append(peak)
    m8, m16 = statistics.median(times[8]), statistics.median(times[16])
    p8, p16 = statistics.median(peaks[8]), statistics.median(peaks[16])
    print(f"{h}x{w}, {args.repeat} alternated runs each, whole processes (medians)")
    print(f"depth 8:  {m8:.2f} s wall, peak {p8:.0f} MB")
    print(f"depth 16: {m16:.2f} s wall, peak {p16:.0f} MB")
    print(f"depth 16 / depth 8: time {m16 / m8:.2f}x, memory {p16 / p8:.2f}x")


if __name__ == "__main__":
    main()
