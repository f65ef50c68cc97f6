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

__all__ = ["PRESETS", "Settings", "SettingsError", "parse_bool", "parse_choice", "parse_number"]

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

    The message names the key and says what is allowed, one line per problem; ``problems``
    holds ``(key, message)`` for each (all the problems found, not only the first).
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [("", message)]


def _parse_color(key: str, value: Any) -> tuple[int, int, int]:
    if isinstance(value, str):
        m = _HEX.match(value.strip())
        if m:
            h = m.group(1)
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
        from PIL import ImageColor  # names ('white'), '#fff', 'rgb(...)', 'hsl(...)': as Pillow reads them

        try:
            r, g, b = ImageColor.getcolor(value.strip(), "RGB")
        except ValueError:
            pass
        else:
            if not all(0 <= v <= 255 for v in (r, g, b)):  # Pillow passes rgb(300, 0, 0) through
                raise SettingsError(f"{key}: {value!r} is out of range; each of red, green and blue is 0-255")
            return (int(r), int(g), int(b))
    elif isinstance(value, (list, tuple)) and len(value) == 3:
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
            return (int(value[0]), int(value[1]), int(value[2]))
    raise SettingsError(
        f"{key}: {value!r} is not a colour; use a name ('white'), '#rgb', '#rrggbb' (for example '#ffffff') "
        "or a list of three integers 0-255"
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
        Colour for ``output: solid``: in config files and options a name (``white``), ``'#rgb'``,
        ``'#rrggbb'`` or ``rgb(r, g, b)`` (as Pillow's ``ImageColor`` reads them), or three integers.
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
    strip : bool
        Drop the input's metadata (EXIF, DPI) from the output; the default carries it over
        (EXIF with its orientation reset, as the pixels are turned upright). The ICC profile is
        always kept: it says what the colours mean.
    depth : {8, 16}
        Bits per channel of the output. 16 (PNG only) keeps a 16-bit input's colours at full
        precision; an 8-bit input is widened. The default 8 writes 8 bits whatever the input.
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
    review_below: float = 0.8
    strip: bool = False
    depth: int = 8

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
        problems: list[tuple[str, str]] = []
        for raw_key, value in values.items():
            key = str(raw_key).replace("-", "_")
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                also = f" (did you mean '{hint[0]}'?)" if hint else ""
                problems.append(
                    (str(raw_key), f"unknown setting '{raw_key}'{also}; known settings: {', '.join(known)}")
                )
            else:
                kwargs[key] = value
        try:
            settings = cls(**kwargs)
        except SettingsError as exc:
            problems += exc.problems
        if problems:
            text = "\n".join(f"{_prefix(where)}{msg}" for _key, msg in problems)
            raise SettingsError(text, problems) from None
        return settings

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

    @property
    def hard_edged(self) -> bool:
        """Whether the matte keeps the segmentation's hard edge (no feather, or a preset): nothing is solved."""
        return self.feather <= 0 or bool(self.preset)


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _set(obj: Settings, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# The one type rule of every value knockout reads (settings, config.yaml's daemon keys, the
# executor's): a number is an int or float, or a string that parses as one (command-line
# options and quoted YAML values are text); an integer must be integral; never a bool. A
# boolean is true/false (or yes/no, on/off, 1/0 as text). A choice is one of the allowed words.


def parse_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` (any case) if it is one of ``allowed``, lower-cased; else :class:`SettingsError`."""
    if not isinstance(value, str) or value.lower() not in allowed:
        raise SettingsError(f"{name}: {value!r} is not allowed; use one of: {', '.join(allowed)}")
    return value.lower()


def parse_number(name: str, value: Any, lo: float, hi: float, *, integer: bool, terse: bool = False) -> Any:
    """``value`` as an int (``integer``) or float from ``lo`` to ``hi``; else :class:`SettingsError`.

    ``terse`` words every problem "is not allowed; use ..." (config.yaml's daemon keys) instead
    of saying whether the type or the range is wrong (settings).
    """
    kind = "an integer" if integer else "a number"
    span = f"{lo:g} to {hi:g}" if terse else f"{lo} to {hi}"
    parsed = value
    if isinstance(value, str):
        try:
            parsed = int(value) if integer else float(value)
        except ValueError:
            parsed = None
    if isinstance(parsed, bool) or not isinstance(parsed, (int,) if integer else (int, float)):
        problem = "not allowed" if terse else f"not {kind}"
        raise SettingsError(f"{name}: {value!r} is {problem}; use {kind} from {span}")
    if not (lo <= parsed <= hi):
        problem = "not allowed" if terse else "out of range"
        raise SettingsError(f"{name}: {value!r} is {problem}; use {kind} from {span}")
    return int(parsed) if integer else float(parsed)


def parse_bool(name: str, value: Any) -> bool:
    """``value`` as a bool (true/false, or yes/no, on/off, 1/0 as text); else :class:`SettingsError`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise SettingsError(f"{name}: {value!r} is not a boolean; use true or false")


def _validate(s: Settings) -> None:
    problems: list[tuple[str, str]] = []

    def put(name: str, check: Any) -> None:
        try:
            _set(s, name, check(getattr(s, name)))
        except SettingsError as exc:
            problems.append((name, str(exc)))

    put("method", lambda v: parse_choice("method", v, METHODS))
    put("preset", lambda v: None if v is None else parse_choice("preset", v, tuple(PRESETS)))
    put("clusters", lambda v: parse_number("clusters", v, 2, 32, integer=True))
    put("tolerance", _tolerance)
    put("feather", lambda v: parse_number("feather", v, 0.0, 20.0, integer=False))
    put("decontaminate", lambda v: parse_bool("decontaminate", v))
    put("fill_holes", lambda v: parse_bool("fill_holes", v))
    put("min_island", lambda v: parse_number("min_island", v, 0.0, 0.5, integer=False))
    put("output", lambda v: parse_choice("output", v, OUTPUTS))
    put("format", lambda v: parse_choice("format", "jpeg" if str(v).lower() == "jpg" else v, FORMATS))
    if s.format == "jpeg" and s.output == "rgba":
        problems.append(
            (
                "format",
                "format: jpeg cannot hold an alpha channel; use png or webp with output: rgba, "
                "or output: solid / mask with jpeg",
            )
        )
    put("background", lambda v: _parse_color("background", v))
    put("crop", lambda v: parse_bool("crop", v))
    put("margin", lambda v: parse_number("margin", v, 0, 10_000, integer=True))
    put("png_compression", lambda v: parse_number("png_compression", v, 0, 9, integer=True))
    put("jpeg_quality", lambda v: parse_number("jpeg_quality", v, 1, 100, integer=True))
    put("max_pixels", lambda v: parse_number("max_pixels", v, 1, 2**40, integer=True))
    put("seed", lambda v: parse_number("seed", v, 0, 2**31 - 1, integer=True))
    put("face_prior", lambda v: parse_bool("face_prior", v))
    put("review_below", lambda v: parse_number("review_below", v, 0.0, 1.0, integer=False))
    put("strip", lambda v: parse_bool("strip", v))
    put("depth", _depth)
    if s.depth == 16 and s.format != "png":
        problems.append(
            ("depth", f"depth: 16 needs format: png (got format: {s.format}); use depth: 8 with {s.format}")
        )
    if problems:
        raise SettingsError("\n".join(msg for _name, msg in problems), problems)


def _tolerance(v: Any) -> str | float:
    if isinstance(v, str) and v.lower() == "auto":
        return "auto"
    try:
        return parse_number("tolerance", v, 0.5, 100.0, integer=False)
    except SettingsError:
        raise SettingsError(
            f"tolerance: {v!r} is not allowed; use 'auto' or a colour distance (CIE delta E) from 0.5 to 100"
        ) from None


def _depth(v: Any) -> int:
    depth = parse_number("depth", v, 8, 16, integer=True)
    if depth not in (8, 16):
        raise SettingsError(f"depth: {v!r} is not allowed; use 8 or 16 (bits per channel)")
    return depth
