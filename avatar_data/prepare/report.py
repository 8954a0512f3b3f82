"""The quality report of a prepared video: a contact sheet, a pose plot and report.md (PIL + numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from avatar_data.prepare import alignment

SHEET_TILE = 160
SHEET_COLUMNS = 6
PLOT_SIZE = (960, 360)
_COLOURS = {"yaw": (214, 39, 40), "pitch": (31, 119, 180), "roll": (44, 160, 44)}


def contact_sheet(crops: Sequence[np.ndarray], landmarks: Sequence[np.ndarray], titles: Sequence[str],
                  resolution: int, tile: int = SHEET_TILE, columns: int = SHEET_COLUMNS) -> Image.Image:
    """Tiles of crops (uint8 [R, R, 3]) with their landmarks ([N, 2] crop pixels) drawn: mesh points in
    yellow, the five alignment points in red, a title per tile."""
    n = len(crops)
    rows = max(1, -(-n // columns))
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 14)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    k = tile / float(resolution)
    for i, (crop, lm, title) in enumerate(zip(crops, landmarks, titles)):
        x0, y0 = (i % columns) * tile, (i // columns) * (tile + 14)
        sheet.paste(Image.fromarray(crop).resize((tile, tile), Image.BILINEAR), (x0, y0 + 14))
        pts = np.asarray(lm, np.float64)[:468, :2] * k
        for x, y in pts:
            draw.point((x0 + x, y0 + 14 + y), fill=(255, 230, 0))
        for x, y in alignment.five_points(np.asarray(lm)[:468, :2]) * k:
            draw.ellipse((x0 + x - 2, y0 + 14 + y - 2, x0 + x + 2, y0 + 14 + y + 2), outline=(255, 0, 0))
        draw.text((x0 + 3, y0 + 1), title, fill=(230, 230, 230))
    return sheet


def _nice_step(span: float) -> float:
    raw = span / 6.0
    mag = 10 ** np.floor(np.log10(max(raw, 1e-9)))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def pose_plot(frame_index: np.ndarray, angles: np.ndarray, fps: float, dropped: Sequence[int] = (),
              size=PLOT_SIZE) -> Image.Image:
    """Yaw / pitch / roll (degrees, [T, 3]) over time (seconds) as a line plot; dropped frames as grey ticks."""
    w, h = size
    left, right, top, bottom = 56, 16, 28, 40
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    t = np.asarray(frame_index, np.float64) / fps
    a = np.asarray(angles, np.float64)
    t_max = max(float(t.max()) if t.size else 1.0, 1e-3)
    lo = float(min(a.min(), -5.0)) if a.size else -5.0
    hi = float(max(a.max(), 5.0)) if a.size else 5.0
    step = _nice_step(hi - lo)
    lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step

    def xy(tt, v):
        return (left + (w - left - right) * tt / t_max, top + (h - top - bottom) * (hi - v) / (hi - lo))

    for v in np.arange(lo, hi + step / 2, step):
        y = xy(0, v)[1]
        draw.line((left, y, w - right, y), fill=(225, 225, 225))
        draw.text((4, y - 6), f"{v:g}", fill=(60, 60, 60))
    t_step = _nice_step(t_max)
    for tt in np.arange(0.0, t_max + t_step / 2, t_step):
        x = xy(tt, lo)[0]
        draw.line((x, h - bottom, x, h - bottom + 4), fill=(60, 60, 60))
        draw.text((x - 8, h - bottom + 6), f"{tt:g}", fill=(60, 60, 60))
    draw.text((w // 2 - 30, h - 16), "time (s)", fill=(60, 60, 60))
    draw.text((4, 6), "degrees", fill=(60, 60, 60))
    for f in dropped:
        x = xy(f / fps, lo)[0]
        draw.line((x, top, x, top + 6), fill=(150, 150, 150))
    draw.rectangle((left, top, w - right, h - bottom), outline=(120, 120, 120))
    for j, name in enumerate(("yaw", "pitch", "roll")):
        if len(t) > 1:
            pts = [xy(tt, v) for tt, v in zip(t, a[:, j])]
            breaks = np.flatnonzero(np.diff(np.asarray(frame_index)) > 1) + 1
            for seg in np.split(np.arange(len(pts)), breaks):
                if len(seg) > 1:
                    draw.line([pts[i] for i in seg], fill=_COLOURS[name], width=2)
        lx = w - right - 190 + 62 * j
        draw.line((lx, 14, lx + 16, 14), fill=_COLOURS[name], width=3)
        draw.text((lx + 20, 8), name, fill=(30, 30, 30))
    return img


def frame_ranges(frames: Sequence[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    frames = sorted(int(f) for f in frames)
    out, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            out.append(f"{start}" if start == f else f"{start}-{f}")
            start = None
    return ", ".join(out)


def markdown(report: dict) -> str:
    """report.md from the report.json dict."""
    lines = [f"# Prepared video: {report['source']}", ""]
    c = report["counts"]
    lines += [
        f"* frames decoded at {report['fps']:g} fps: {c['decoded']}; kept: {c['kept']} "
        f"({100.0 * c['kept'] / max(c['decoded'], 1):.1f}%); dropped: {c['dropped']}",
        f"* train / test frames: {c['train']} / {c['test']}",
        f"* resolution: {report['resolution']}; tracking: {report['tracking']['summary']}",
        f"* faces in view: at most {report['tracking']['max_faces']} "
        f"({report['tracking']['frames_with_several_faces']} sampled frames with several)",
        "* pose (degrees, mean / min / max): " + "; ".join(
            f"{k} {v['mean']:.1f} / {v['min']:.1f} / {v['max']:.1f}" for k, v in report["pose"].items()),
        f"* PnP reprojection error (px at {report['resolution']}): mean {report['pnp_rms_px']['mean']:.2f}, "
        f"max {report['pnp_rms_px']['max']:.2f}",
        f"* speed: {report['frames_per_second']:.1f} frames/s ({report['seconds']:.1f} s)",
        "",
    ]
    if report["warnings"]:
        lines += ["## Warnings", ""] + [f"* {w}" for w in report["warnings"]] + [""]
    lines += ["## Dropped frames", ""]
    if report["dropped"]:
        by_reason: dict = {}
        for d in report["dropped"]:
            by_reason.setdefault(d["reason"], []).append(d["frame"])
        lines += [f"* {reason}: {len(fr)} frames ({frame_ranges(fr)})" for reason, fr in by_reason.items()]
    else:
        lines += ["none"]
    lines += ["", "![contact sheet](contact_sheet.png)", "", "![pose over time](pose.png)", ""]
    return "\n".join(lines)
