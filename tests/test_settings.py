import dataclasses
import re

import pytest

from knockout import Settings, SettingsError


def test_defaults_are_valid_and_frozen():
    s = Settings()
    assert s.method == "threshold" and s.tolerance == "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.method = "threshold"  # type: ignore[misc]


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(SettingsError, match=r"unknown setting 'feathr' \(did you mean 'feather'\?\)"):
        Settings.from_mapping({"feathr": 2})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("method", "magic", r"method: 'magic' is not allowed; use one of: kmeans, threshold"),
        ("clusters", 1, r"clusters: 1 is out of range; use an integer from 2 to 32"),
        ("clusters", 2.5, r"clusters: 2.5 is not an integer"),
        ("tolerance", -3, r"tolerance: -3 is not allowed; use 'auto'"),
        ("feather", "wide", r"feather: 'wide' is not a number"),
        ("decontaminate", "maybe", r"decontaminate: 'maybe' is not a boolean"),
        ("background", "#12345", r"background: '#12345' is not a colour"),
        ("png_compression", 10, r"png_compression: 10 is out of range"),
        ("preset", "classic", r"preset: 'classic' is not allowed; use one of: classic-threshold, classic-kmeans"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(key, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({key: value}, where="cfg.yaml")


def test_where_prefix_and_jpeg_needs_no_alpha():
    with pytest.raises(SettingsError, match=r"^cfg.yaml: format: jpeg cannot hold an alpha channel"):
        Settings.from_mapping({"format": "jpeg"}, where="cfg.yaml")
    assert Settings.from_mapping({"format": "jpg", "output": "solid"}).format == "jpeg"


def test_round_trip_through_dict_and_strings():
    s = Settings(method="threshold", tolerance=12, background="#00ff80", crop=True)
    assert s.background == (0, 255, 128)
    assert Settings.from_mapping(s.to_dict()) == s
    assert Settings.from_mapping({"feather": "2.5", "fill-holes": "no"}).feather == 2.5
    assert Settings.from_mapping({"fill-holes": "no"}).fill_holes is False
    assert s.replace(method="kmeans").method == "kmeans"
    with pytest.raises(SettingsError):
        s.replace(clusters=99)


def test_preset_overrides_method():
    assert Settings(preset="classic-threshold").effective_method == "threshold"
    assert Settings(method="threshold", preset="classic-kmeans").effective_method == "kmeans"


def test_colours_by_name_short_hex_and_css_forms():
    from knockout import Settings, SettingsError

    assert Settings(background="white").background == (255, 255, 255)
    assert Settings(background="#fff").background == (255, 255, 255)
    assert Settings(background="#00b140").background == (0, 177, 64)
    assert Settings(background="rgb(1, 2, 3)").background == (1, 2, 3)
    assert Settings(background="Navy").to_dict()["background"] == "#000080"
    with pytest.raises(SettingsError, match="background: 'nope' is not a colour"):
        Settings(background="nope")
    # Pillow reads 'rgb(300, 0, 0)' as (300, 0, 0): out of range, refused as the user wrote it
    for css in ("rgb(300, 0, 0)", "rgb(0,0,256)"):
        with pytest.raises(SettingsError, match=re.escape(f"background: {css!r} is out of range")):
            Settings(background=css)


def test_strip_and_depth():
    from knockout import Settings, SettingsError

    assert Settings().strip is False and Settings().depth == 8
    assert Settings.from_mapping({"strip": "yes", "depth": "16"}).depth == 16
    with pytest.raises(SettingsError, match="depth: 12 is not allowed; use 8 or 16"):
        Settings(depth=12)
    with pytest.raises(SettingsError, match="depth: 16 needs format: png"):
        Settings(depth=16, format="webp")
