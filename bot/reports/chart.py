"""The ``stats`` picture: locks per day by reason, how they ended, time to approval and repeat lockouts, as a PNG.

Drawn with matplotlib's Agg backend on a ``Figure`` of its own, without pyplot; the font settings it needs are
global in matplotlib, so one picture is drawn at a time, and a worker thread may draw it. matplotlib is imported
only here, and only when a picture is drawn, so starting the bot stays fast.
Every word in the picture comes from the labels of ``templates/<locale>/labels.yaml`` (keys ``chart_*``).
Chinese needs a CJK font that matplotlib can find (Noto Sans CJK, Source Han Sans, WenQuanYi...); without one
the picture is drawn with the English labels and a warning is logged, never with empty boxes for characters.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bot.crm.base import LockReason
from bot.reports.stats import RESOLUTIONS, LockStats, minutes_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

# ``Renderer.label``: (key, locale, params) -> text.
Label = Callable[[str, str, Mapping[str, object] | None], str]

# Families tried in order for Chinese; any other installed family whose name says CJK will do as well.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "SimHei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
)
# Font files that hold one of those families, by name (wqy-microhei.ttc, NotoSansCJK-Regular.ttc...).
_CJK_FILE = re.compile(r"cjk|wqy|sourcehan|notosanssc|msyh|simhei|droidsansfallback|uming", re.IGNORECASE)
LATIN_FAMILY = "DejaVu Sans"  # matplotlib's own font, always there
WIDTH, HEIGHT, DPI = 11.0, 6.2, 100  # 1100 x 620 pixels
# One colour per reason, the same in every picture.
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#86bcb6",
)
COLOURS = {reason.value: _PALETTE[n % len(_PALETTE)] for n, reason in enumerate(LockReason)}
ENDED_COLOURS = {
    "self_service": "#59a14f",
    "approved": "#4e79a7",
    "denied": "#e15759",
    "nobody": "#bab0ac",
    "waiting": "#edc948",
}


# matplotlib's settings (the font family) are global while a picture is drawn: one picture at a time.
_DRAWING = threading.Lock()


@dataclass(frozen=True, slots=True)
class Chart:
    """A drawn picture, the language its words are in, and the font that wrote them."""

    png: bytes
    locale: str
    font: str


def cjk_font() -> str | None:
    """The name of an installed font family that has Chinese characters, if matplotlib can find one.

    matplotlib remembers the fonts it found when its cache was made; a font installed since (``apt-get
    install fonts-wqy-microhei`` on a machine that had drawn before) is looked for among the system's font
    files and added, so nobody has to delete the cache.
    """
    from matplotlib import font_manager

    found = _known_cjk_font(font_manager)
    if found is None:
        for path in font_manager.findSystemFonts():
            if _CJK_FILE.search(Path(path).name):
                with contextlib.suppress(Exception):  # a font file matplotlib cannot read is simply not used
                    font_manager.fontManager.addfont(path)
        found = _known_cjk_font(font_manager)
    return found


def _known_cjk_font(font_manager: ModuleType) -> str | None:
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    return next((name for name in sorted(installed) if "CJK" in name), None)


def _duration(label: Label, locale: str, minutes: int | None) -> str:
    if minutes is None:
        return "—"
    if minutes < 120:
        return label("chart_minutes", locale, {"n": minutes})
    return label("chart_hours", locale, {"n": f"{minutes / 60:.1f}".removesuffix(".0")})


def render_chart(stats: LockStats, label: Label, locale: str) -> Chart:
    """Draw ``stats`` with the words of ``locale`` (English when it is Chinese and no CJK font is installed)."""
    with _DRAWING:
        font = LATIN_FAMILY
        if locale != "en":
            found = cjk_font()
            if found is None:
                log.warning(
                    "no CJK font found for the chart's Chinese labels; drawing it in English "
                    "(install one, e.g. apt-get install fonts-wqy-microhei or fonts-noto-cjk)"
                )
                locale = "en"
            else:
                font = found
        return Chart(_draw(stats, label, locale, font), locale, font)


def _draw(stats: LockStats, label: Label, locale: str, font: str) -> bytes:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def words(key: str, **params: object) -> str:
        return label(key, locale, params)

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    settings: dict[str, Any] = {
        "font.family": "sans-serif",
        "font.sans-serif": [font, LATIN_FAMILY],
        "axes.unicode_minus": False,
    }
    # Inside the block until the file is written: the family is looked up when the text is drawn.
    with matplotlib.rc_context(settings):  # type: ignore[arg-type]
        hours = round((stats.until - stats.since) / timedelta(hours=1))
        figure.suptitle(words("chart_title", hours=hours, total=stats.total), fontsize=15)
        grid = figure.add_gridspec(2, 3, height_ratios=(3, 2))
        _per_day(figure.add_subplot(grid[:, :2]), stats, words)
        _ended(figure.add_subplot(grid[0, 2]), stats, words)
        numbers = figure.add_subplot(grid[1, 2])
        numbers.axis("off")
        p50 = _duration(label, locale, minutes_of(stats.approval_p50))
        p90 = _duration(label, locale, minutes_of(stats.approval_p90))
        lines = [
            words("chart_approval_time"),
            words("chart_p50", time=p50),
            words("chart_p90", time=p90),
            words("chart_approvals", count=stats.approvals_timed),
            "",
            words("chart_repeats", count=len(stats.repeated)),
            *(f"  {name} × {count}" for name, count in stats.repeated[:3]),
        ]
        numbers.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=11, linespacing=1.5)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _per_day(axes: Axes, stats: LockStats, words: Callable[..., str]) -> None:
    from matplotlib.ticker import MaxNLocator

    positions = list(range(len(stats.days)))
    bottom = [0] * len(positions)
    for reason, counts in stats.per_day.items():
        axes.bar(
            positions,
            counts,
            bottom=bottom,
            color=COLOURS.get(reason, "#bab0ac"),
            label=words("chart_reason", code=reason),
            width=0.8,
        )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_title(words("chart_per_day"), loc="left", fontsize=12)
    axes.set_ylabel(words("chart_locks"))
    step = max(1, len(positions) // 10)
    axes.set_xticks(positions[::step], [d.strftime("%m-%d") for d in stats.days[::step]], rotation=45, fontsize=9)
    axes.set_xlim(-0.6, len(positions) - 0.4)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    if stats.per_day:
        # Below the bars, never over them.
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=9, frameon=False)
    else:
        axes.set_ylim(0, 1)
        axes.text(0.5, 0.5, words("chart_no_locks"), transform=axes.transAxes, ha="center", va="center", fontsize=13)


def _ended(axes: Axes, stats: LockStats, words: Callable[..., str]) -> None:
    names = list(reversed(RESOLUTIONS))
    counts = [stats.resolutions[name] for name in names]
    bars = axes.barh([words(f"chart_{name}") for name in names], counts, color=[ENDED_COLOURS[name] for name in names])
    axes.bar_label(bars, padding=3, fontsize=10)
    axes.set_title(words("chart_ended"), loc="left", fontsize=12)
    axes.set_xlim(0, max([*counts, 1]) * 1.25)
    axes.xaxis.set_visible(False)
    axes.spines[["top", "right", "bottom"]].set_visible(False)
