"""The one settings object shared by the CLI, the daemon, the GIMP plug-in and ``config.yaml``.

Every key of :class:`Settings` is also a key of a job in ``config.yaml`` and an option of
``knockout cut``. Validation lives here only, so every front end reports the same errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["PRESETS", "Settings", "SettingsError"]

METHODS = ("kmeans", "threshold")
OUTPUTS = ("rgba", "mask", "solid")
FORMATS = ("png", "webp", "jpeg")
PRESETS: dict[str, dict[str, Any]] = {
    # The source article's recipes, kept exactly (see ``knockout.segment``).
    "classic-threshold": {"method": "threshold"},
    "classic-kmeans": {"method": "kmeans"},
}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


class SettingsError(ValueError):
    """A setting has an unknown name, a wrong type or a value out of range.

    The message names the key and says what is allowed.
    """


def _parse_color(key: str, value: Any) -> tuple[int, int, int]:
    if isinstance(value, str):
        m = _HEX.match(value.strip())
        if m:
            h = m.group(1)
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    elif isinstance(value, (list, tuple)) and len(value) == 3:
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
            return (int(value[0]), int(value[1]), int(value[2]))
    raise SettingsError(
        f"{key}: {value!r} is not a colour; use '#rrggbb' (for example '#ffffff') or a list of three integers 0-255"
    )


@dataclass(frozen=True)
class Settings:
    """Segmentation and output settings (immutable).

    Build one with ``Settings()`` for the defaults, ``Settings.from_mapping(d)`` from a
    ``config.yaml`` job or CLI options, and ``s.replace(key=value)`` for a variant. All
    values are validated on construction; a bad one raises :class:`SettingsError`.

    Attributes
    ----------
    method : {'kmeans', 'threshold'}
        How pixels are compared with the backdrop model: colour clusters (scikit-learn
        KMeans) or a colour-distance threshold in CIE Lab.
    preset : str or None
        ``'classic-threshold'`` or ``'classic-kmeans'`` run the source article's recipes
        exactly (first-pixel backdrop, no spatial reasoning); they override ``method``.
    clusters : int
        Number of colour clusters for ``kmeans`` (2-32).
    tolerance : 'auto' or float
        Colour distance (CIE76 delta E) within which a pixel counts as backdrop;
        ``'auto'`` picks it per image.
    feather : float
        Width in pixels of the soft-alpha band along the edge; 0 keeps a hard 0/255 edge.
    decontaminate : bool
        Remove the backdrop colour spilled into edge pixels.
    fill_holes : bool
        Fill holes inside the subject.
    min_island : float
        Foreground or backdrop islands smaller than this fraction of the image are removed.
    output : {'rgba', 'mask', 'solid'}
        Cut-out with alpha, the 8-bit mask alone, or the subject on ``background``.
    format : {'png', 'webp', 'jpeg'}
        Output file format; ``jpeg`` only for ``output: solid`` or ``mask``.
    background : tuple of int
        Colour for ``output: solid``, as ``'#rrggbb'`` in config files.
    crop : bool
        Crop the output to the subject's bounding box plus ``margin``.
    margin : int
        Margin in pixels around the subject when cropping.
    png_compression : int
        PNG compression level 0-9. 1-3 (default 1): the fast writer (ISA-L deflate; 2 is about
        as small as 1, 3 is not smaller on photos). 0 (stored, no compression) and 4-9 (zlib, 9 is
        the smallest and slowest): Pillow, which is several times slower than 1-3.
    jpeg_quality : int
        JPEG quality 1-100.
    max_pixels : int
        Largest image accepted (Pillow's decompression-bomb guard).
    seed : int
        Random seed for KMeans and sampling, so results are reproducible.
    face_prior : bool
        Look for a frontal face and use where it is: the face and neck stay subject, and of the
        tolerance plateaus the one that clears the frame beside and above the head is taken.
    review_below : float
        A cut-out whose confidence (0-1, see :mod:`knockout.confidence`) is below this is flagged
        for review: the daemon files it in the job's ``review`` folder, ``knockout cut --report``
        marks it. 0 flags nothing, 1 everything.
    """

    method: str = "threshold"
    preset: str | None = None
    clusters: int = 8
    tolerance: str | float = "auto"
    feather: float = 1.5
    decontaminate: bool = True
    fill_holes: bool = True
    min_island: float = 0.002
    output: str = "rgba"
    format: str = "png"
    background: tuple[int, int, int] = field(default=(255, 255, 255))
    crop: bool = False
    margin: int = 16
    png_compression: int = 1
    jpeg_quality: int = 92
    max_pixels: int = 89_478_485
    seed: int = 0
    face_prior: bool = True
    review_below: float = 0.5

    def __post_init__(self) -> None:
        _validate(self)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The names of all settings, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, *, where: str = "") -> Settings:
        """Build settings from a mapping such as a ``config.yaml`` job.

        Parameters
        ----------
        values : mapping
            Keys are setting names; hyphens are accepted for underscores.
        where : str, optional
            Prefix for error messages, for example ``'config.yaml: jobs[0].settings'``.

        Raises
        ------
        SettingsError
            For an unknown key (with the closest known one), a wrong type or a value out
            of range.
        """
        values = dict(values or {})
        known = cls.keys()
        kwargs: dict[str, Any] = {}
        for raw_key, value in values.items():
            key = str(raw_key).replace("-", "_")
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                also = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise SettingsError(
                    f"{_prefix(where)}unknown setting '{raw_key}'{also}; known settings: {', '.join(known)}"
                )
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except SettingsError as exc:
            raise SettingsError(f"{_prefix(where)}{exc}") from None

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain YAML/JSON-friendly values (colours as ``'#rrggbb'``)."""
        d = dataclasses.asdict(self)
        d["background"] = "#{:02x}{:02x}{:02x}".format(*self.background)
        return d

    @property
    def effective_method(self) -> str:
        """The method actually run: the preset's method when a preset is set."""
        return PRESETS[self.preset]["method"] if self.preset else self.method


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _set(obj: Settings, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise SettingsError(f"{name}: {value!r} is not allowed; use one of: {', '.join(allowed)}")
    return value.lower()


def _number(name: str, value: Any, lo: float, hi: float, *, integer: bool) -> Any:
    kind = "an integer" if integer else "a number"
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        if isinstance(value, str):
            try:
                value = int(value) if integer else float(value)
            except ValueError:
                raise SettingsError(f"{name}: {value!r} is not {kind}; use {kind} from {lo} to {hi}") from None
        else:
            raise SettingsError(f"{name}: {value!r} is not {kind}; use {kind} from {lo} to {hi}")
    if not (lo <= value <= hi):
        raise SettingsError(f"{name}: {value!r} is out of range; use {kind} from {lo} to {hi}")
    return int(value) if integer else float(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise SettingsError(f"{name}: {value!r} is not a boolean; use true or false")


def _validate(s: Settings) -> None:
    _set(s, "method", _choice("method", s.method, METHODS))
    if s.preset is not None:
        _set(s, "preset", _choice("preset", s.preset, tuple(PRESETS)))
    _set(s, "clusters", _number("clusters", s.clusters, 2, 32, integer=True))
    if isinstance(s.tolerance, str) and s.tolerance.lower() == "auto":
        _set(s, "tolerance", "auto")
    else:
        try:
            tol = _number("tolerance", s.tolerance, 0.5, 100.0, integer=False)
        except SettingsError:
            raise SettingsError(
                f"tolerance: {s.tolerance!r} is not allowed; use 'auto' or a colour distance "
                "(CIE delta E) from 0.5 to 100"
            ) from None
        _set(s, "tolerance", tol)
    _set(s, "feather", _number("feather", s.feather, 0.0, 20.0, integer=False))
    _set(s, "decontaminate", _bool("decontaminate", s.decontaminate))
    _set(s, "fill_holes", _bool("fill_holes", s.fill_holes))
    _set(s, "min_island", _number("min_island", s.min_island, 0.0, 0.5, integer=False))
    _set(s, "output", _choice("output", s.output, OUTPUTS))
    fmt = _choice("format", "jpeg" if str(s.format).lower() == "jpg" else s.format, FORMATS)
    _set(s, "format", fmt)
    if fmt == "jpeg" and s.output == "rgba":
        raise SettingsError(
            "format: jpeg cannot hold an alpha channel; use png or webp with output: rgba, "
            "or output: solid / mask with jpeg"
        )
    _set(s, "background", _parse_color("background", s.background))
    _set(s, "crop", _bool("crop", s.crop))
    _set(s, "margin", _number("margin", s.margin, 0, 10_000, integer=True))
    _set(s, "png_compression", _number("png_compression", s.png_compression, 0, 9, integer=True))
    _set(s, "jpeg_quality", _number("jpeg_quality", s.jpeg_quality, 1, 100, integer=True))
    _set(s, "max_pixels", _number("max_pixels", s.max_pixels, 1, 2**40, integer=True))
    _set(s, "seed", _number("seed", s.seed, 0, 2**31 - 1, integer=True))
    _set(s, "face_prior", _bool("face_prior", s.face_prior))
    _set(s, "review_below", _number("review_below", s.review_below, 0.0, 1.0, integer=False))
