"""The tablets' colours meet WCAG 2.x AA (4.5:1 for text), computed from webapp/static/kiosk.css itself.

Contrast ratio and relative luminance as WCAG 2.2 defines them (Understanding SC 1.4.3): (L1 + 0.05) / (L2 +
0.05), L = 0.2126 R + 0.7152 G + 0.0722 B on linearised sRGB channels. A rule that sets both `color` and a
background is judged against its own background; a rule that sets only `color` sits on the page's (`body.kiosk`).
Text is never made translucent (opacity would lower the ratio): only the selectors listed in
`TRANSLUCENT_OK` may use `opacity`. The ratios written in the stylesheet's header comment are checked too, so
the documentation cannot drift from the colours.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parent.parent / "webapp" / "static" / "kiosk.css").read_text()
AA_TEXT = 4.5
# Disabled buttons are exempt from SC 1.4.3; the fading message is on its way out; the timeline is decorative
# (aria-hidden: the same facts are in "Later today").
TRANSLUCENT_OK = {".kiosk-button:disabled", ".kiosk-timeline-item", ".kiosk-timeline-item.via", ".kiosk-toast.fade"}


def luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(ch * 2 for ch in value)

    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(value[i:i + 2], 16)) for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def rules() -> list[tuple[str, dict[str, str]]]:
    """(selector, {property: value}) for every plain rule of the stylesheet (media queries unwrapped)."""
    text = re.sub(r"/\*.*?\*/", "", CSS, flags=re.S)
    text = re.sub(r"@media[^{]*\{((?:[^{}]*\{[^{}]*\})*)\s*\}", r"\1", text)
    found = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        declarations = {}
        for part in body.split(";"):
            if ":" in part:
                name, value = part.split(":", 1)
                declarations[name.strip()] = value.strip()
        found.append((" ".join(selector.split()), declarations))
    return found


HEX = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")


def colour_of(value: str | None) -> str | None:
    match = HEX.search(value or "")
    return match.group(0) if match else None


def page_background() -> str:
    [body] = [d for s, d in rules() if s == "body.kiosk"]
    return colour_of(body["background"])


def test_the_contrast_formula_matches_known_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic just-fails grey


def text_pairs() -> list[tuple[str, str, str]]:
    page = page_background()
    pairs = []
    for selector, declarations in rules():
        fg = colour_of(declarations.get("color"))
        if fg is None:
            continue
        bg = colour_of(declarations.get("background") or declarations.get("background-color")) or page
        pairs.append((selector, fg, bg))
    return pairs


def test_every_text_colour_meets_aa_on_its_background():
    pairs = text_pairs()
    # The status colours, the page's text, buttons, badges and messages are all there.
    selectors = {s for s, _, _ in pairs}
    for expected in (".kiosk-status.state-free", ".kiosk-status.state-soon", ".kiosk-status.state-busy",
                     ".kiosk-status.state-closed", "body.kiosk", ".kiosk-button", ".kiosk-offline",
                     '.kiosk-toast[data-level="error"]', ".enrol-error"):
        assert expected in selectors, expected
    failing = [(s, fg, bg, round(contrast(fg, bg), 2)) for s, fg, bg in pairs if contrast(fg, bg) < AA_TEXT]
    assert failing == []


def test_the_dimmed_closed_panel_still_meets_aa():
    closed = [(s, colour_of(d.get("color"))) for s, d in rules() if "state-closed" in s and d.get("color")]
    assert closed, "the closed state and the dimmed header have colours of their own"
    page = page_background()
    for selector, fg in closed:
        bg = colour_of(dict(rules())[selector].get("background")) or page
        assert contrast(fg, bg) >= AA_TEXT, selector


def test_only_exempt_or_decorative_elements_are_translucent():
    translucent = {s for s, d in rules() if "opacity" in d and float(d["opacity"]) < 1}
    assert translucent <= TRANSLUCENT_OK, translucent - TRANSLUCENT_OK


def test_the_ratios_written_in_the_stylesheet_are_the_computed_ones():
    header = CSS.split("*/", 1)[0]
    written = re.findall(r"(#[0-9a-fA-F]{6}) on (#[0-9a-fA-F]{6})\s+(\d+(?:\.\d+)?)", header)
    assert len(written) >= 10
    for fg, bg, ratio in written:
        assert contrast(fg, bg) == pytest.approx(float(ratio), abs=0.051), (fg, bg, ratio)
        assert float(ratio) >= AA_TEXT
