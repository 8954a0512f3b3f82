"""The quality report of a prepared video: a contact sheet with a segment strip, a pose plot and report.md
(PIL + numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from avatar_data.prepare import alignment, persons

SHEET_TILE = 160
SHEET_COLUMNS = 6
PLOT_SIZE = (960, 360)
_COLOURS = {"yaw": (214, 39, 40), "pitch": (31, 119, 180), "roll": (44, 160, 44)}
# Segment colours by person (cycled); segments without a face are grey.
PERSON_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
NO_FACE_COLOUR = (110, 110, 110)
STRIP_TILE = 120


def segment_label(segment: dict) -> str:
    """'S2 P1 out', 'S0 P0 kept', 'S3 no face out'."""
    who = "no face" if segment["person"] is None else f"P{segment['person']}"
    return f"S{segment['index']} {who} {'kept' if segment['kept'] else 'out'}"


def _segment_colour(segment: dict) -> tuple:
    if segment["person"] is None:
        return NO_FACE_COLOUR
    return PERSON_COLOURS[segment["person"] % len(PERSON_COLOURS)]


def segment_strip(segments: Sequence[dict], tiles: Sequence, resolution: int, width: int,
                  tile: int = STRIP_TILE) -> Image.Image:
    """The segments of a video as a picture ``width`` pixels wide: a timeline bar over the decoded frames (one
    block per segment, coloured by person, grey without a face; kept segments full height, left-out ones a thin
    bar), then one tile per segment, its middle tracked frame (``tiles[i]``: (crop uint8 [R, R, 3], landmarks
    [N, 2+] crop pixels) or None) with a frame in the segment's colour, crossed out if left out, under its
    `segment_label` and frame range."""
    total = max(sg["end_frame"] + 1 for sg in segments)
    columns = max(1, width // tile)
    rows = -(-len(segments) // columns)
    bar, label_h = 26, 28
    img = Image.new("RGB", (width, bar + 8 + rows * (tile + label_h)), (32, 32, 32))
    draw = ImageDraw.Draw(img)
    k = (width - 2) / float(total)
    for sg in segments:
        x0, x1 = 1 + sg["start_frame"] * k, 1 + (sg["end_frame"] + 1) * k
        top = 2 if sg["kept"] else bar - 8
        draw.rectangle((x0, top, max(x0, x1 - 2), bar), fill=_segment_colour(sg))
        if x1 - x0 > 24:
            draw.text((x0 + 3, 4), f"S{sg['index']}", fill=(255, 255, 255))
    for i, (sg, t) in enumerate(zip(segments, tiles)):
        x0, y0 = (i % columns) * tile, bar + 8 + (i // columns) * (tile + label_h)
        draw.text((x0 + 3, y0 + 1), segment_label(sg), fill=(230, 230, 230))
        draw.text((x0 + 3, y0 + 14), f"{sg['start_frame']}-{sg['end_frame']}", fill=(180, 180, 180))
        y0 += label_h
        if t is not None:
            crop, lm = t
            img.paste(Image.fromarray(crop).resize((tile - 4, tile - 4), Image.BILINEAR), (x0 + 2, y0 + 2))
            for x, y in np.asarray(lm, np.float64)[:468:4, :2] * (tile - 4) / float(resolution):
                draw.point((x0 + 2 + x, y0 + 2 + y), fill=(255, 230, 0))
        colour = _segment_colour(sg)
        draw.rectangle((x0 + 1, y0 + 1, x0 + tile - 2, y0 + tile - 2), outline=colour, width=2)
        if not sg["kept"]:
            draw.line((x0 + 2, y0 + 2, x0 + tile - 3, y0 + tile - 3), fill=colour, width=2)
            draw.line((x0 + 2, y0 + tile - 3, x0 + tile - 3, y0 + 2), fill=colour, width=2)
    return img


def stack(images: Sequence[Image.Image], background=(32, 32, 32)) -> Image.Image:
    """Images one under the other, left-aligned."""
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), background)
    y = 0
    for i in images:
        out.paste(i, (0, y))
        y += i.height
    return out


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
              size=PLOT_SIZE, cuts: Sequence[int] = ()) -> Image.Image:
    """Yaw / pitch / roll (degrees, [T, 3]) over time (seconds) as a line plot; dropped frames as grey ticks,
    cuts (frames) as dashed vertical lines."""
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
    for c in cuts:
        x = xy(c / fps, lo)[0]
        for y in range(top, h - bottom, 8):
            draw.line((x, y, x, min(y + 4, h - bottom)), fill=(90, 90, 90))
    draw.rectangle((left, top, w - right, h - bottom), outline=(120, 120, 120))
    for j, name in enumerate(("yaw", "pitch", "roll")):
        if len(t) > 1:
            pts = [xy(tt, v) for tt, v in zip(t, a[:, j])]
            fi = np.asarray(frame_index)
            breaks = np.flatnonzero((np.diff(fi) > 1) | np.isin(fi[1:], np.asarray(cuts, np.int64))) + 1
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
    if report.get("segments"):
        lines += ["", "## Segments", "",
                  "| segment | frames | time (s) | tracked | faces in view | person | distance | kept | why |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for sg in report["segments"]:
            dist = "" if sg["distance_to_chosen"] is None else f"{sg['distance_to_chosen']:.2f}"
            lines.append(f"| {sg['index']} | {sg['start_frame']}-{sg['end_frame']} | "
                         f"{sg['start_s']:.2f}-{sg['end_s']:.2f} | {sg['tracked']} | "
                         f"{'' if sg['faces_in_view'] is None else sg['faces_in_view']} | "
                         f"{'' if sg['person'] is None else sg['person']} | {dist} | "
                         f"{'yes' if sg['kept'] else 'no'} | {sg['reason']} |")
        lines += ["", "Distance: the mean distance of the segment's face signature to the other kept segments' "
                      f"(avatar_data.prepare.persons; below {persons.SAME_PERSON:g}: the same person).", ""]
    lines += ["", "![contact sheet](contact_sheet.png)", "", "![pose over time](pose.png)", ""]
    return "\n".join(lines)
