"""The four scene styles: each samples its parameters (cheap, used for the caption) and paints them.

A style is a pair of pure functions: ``sample(rng) -> params`` draws every random choice up front and
``paint(canvas, params)`` turns them into pixels (its texture noise comes from ``canvas.rng``, seeded
from the scene seed), so a panorama painted at any width shows the same world.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .camera import wrap_degrees
from .paint import Canvas, mix

EYE_HEIGHT = 1.6

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 45, 40), "orange": (235, 135, 35), "yellow": (235, 205, 55), "green": (60, 160, 70),
    "teal": (35, 150, 150), "blue": (50, 95, 205), "purple": (135, 65, 175), "pink": (232, 125, 175),
    "white": (236, 236, 232), "grey": (128, 128, 132), "brown": (122, 80, 45), "black": (32, 30, 34),
    "beige": (214, 194, 158), "navy": (30, 45, 110), "lime": (150, 215, 60), "maroon": (120, 30, 45),
}


def _pick(rng: np.random.Generator, options: list[str] | tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _spread(rng: np.random.Generator, count: int, min_gap: float = 14.0) -> list[float]:
    """``count`` azimuths around the circle, at least roughly ``min_gap`` degrees apart, random order."""
    slots = np.sort(rng.uniform(0.0, 360.0, size=count))
    slots = np.linspace(0, 360, count, endpoint=False) * 0.5 + slots * 0.5  # keep them spread out
    jitter = rng.uniform(-min_gap / 4, min_gap / 4, size=count)
    return [float(a) for a in (slots + jitter + rng.uniform(0, 360)) % 360.0]


def _span(distance: float, width_m: float, bottom_m: float, top_m: float) -> tuple[float, float, float]:
    """Angular width and elevation range (degrees) of a flat object seen at ``distance`` metres."""
    width = float(np.degrees(2 * np.arctan(width_m / 2 / distance)))
    low = float(np.degrees(np.arctan((bottom_m - EYE_HEIGHT) / distance)))
    high = float(np.degrees(np.arctan((top_m - EYE_HEIGHT) / distance)))
    return width, low, high


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sky(canvas: Canvas, horizon: tuple, zenith: tuple, cloud: tuple | None, cloud_cover: float) -> None:
    t = np.clip(canvas.el / 70.0, 0.0, 1.0) ** 0.7
    canvas.image[:] = mix(horizon, zenith, t)
    if cloud is not None:
        clouds = canvas.noise(3.0, octaves=4)
        weight = np.clip((clouds - (1.0 - 2 * cloud_cover)) * 2.5, 0, 1) * (canvas.el > 2)
        canvas.blend(weight * 0.85, cloud)


# --- outdoor: a mountain valley --------------------------------------------------------------------------------------
_OUTDOOR_TIMES = {
    "dawn": ((250, 175, 140), (95, 120, 190), (255, 220, 180)),
    "noon": ((185, 215, 245), (60, 120, 215), (255, 250, 225)),
    "dusk": ((245, 125, 80), (55, 45, 110), (255, 190, 120)),
    "night": ((35, 45, 80), (8, 10, 30), (235, 235, 215)),
}
_SEASONS = {"summer": ((80, 150, 60), "green"), "autumn": ((160, 120, 50), "golden"), "winter": ((225, 230, 238), "snowy")}


def sample_outdoor(rng: np.random.Generator) -> dict[str, Any]:
    time, season = _pick(rng, list(_OUTDOOR_TIMES)), _pick(rng, list(_SEASONS))
    n = int(rng.integers(7, 12))
    kinds = [_pick(rng, ("pine tree", "round tree", "cabin", "rock", "tower")) for _ in range(n)]
    objects = [
        {"kind": k, "az": az, "distance": float(rng.uniform(9, 30)), "color": _pick(rng, ("red", "yellow", "blue", "white", "brown", "orange")),
         "scale": float(rng.uniform(0.8, 1.4))}
        for k, az in zip(kinds, _spread(rng, n))
    ]
    return {"time": time, "season": season, "objects": objects, "lake_az": float(rng.uniform(0, 360)),
            "lake_width": float(rng.uniform(40, 90)), "sun_az": float(rng.uniform(0, 360)), "sun_el": float(rng.uniform(8, 35)),
            "cloud_cover": float(rng.uniform(0.15, 0.55))}


def caption_outdoor(p: dict[str, Any]) -> str:
    things = []
    cabins = sorted({o["color"] for o in p["objects"] if o["kind"] == "cabin"})
    if cabins:
        things.append(f"{_join(cabins)} cabins")
    trees = [o for o in p["objects"] if "tree" in o["kind"]]
    if trees:
        things.append("pine trees" if all(o["kind"] == "pine tree" for o in trees) else "trees")
    if any(o["kind"] == "tower" for o in p["objects"]):
        things.append("a stone tower")
    if any(o["kind"] == "rock" for o in p["objects"]):
        things.append("boulders")
    things.append("a frozen lake" if p["season"] == "winter" else "a lake")
    return f"a {_SEASONS[p['season']][1]} mountain valley at {p['time']} with {_join(things)}"


def paint_outdoor(c: Canvas, p: dict[str, Any]) -> None:
    horizon, zenith, sun = _OUTDOOR_TIMES[p["time"]]
    night = p["time"] == "night"
    _sky(c, horizon, zenith, (70, 75, 95) if night else (245, 245, 250), p["cloud_cover"])
    if night:
        stars = (c.noise(40.0, octaves=1) > 0.985) & (c.el > 10)
        c.fill(stars, (255, 255, 240))
    c.fill(c.ellipse(p["sun_az"], p["sun_el"], 4.0, 4.0), sun)
    grass, _ = _SEASONS[p["season"]]
    shade = 0.45 if night else 1.0
    far = c.ridge(9.0, 7.0, lowest=2)[None, :]
    far_mask = c.el <= far
    c.fill(far_mask, mix(horizon, (95, 105, 135), 0.6) * shade)
    c.fill(far_mask & (c.el > far - 3.0 + 4.0 * (p["season"] != "winter")), np.array((240, 242, 248)) * shade)
    near = c.ridge(3.5, 3.0, lowest=3)[None, :]
    c.fill(c.el <= near, np.array(grass) * 0.7 * shade)
    x, z, dist = c.ground(EYE_HEIGHT)
    below = np.isfinite(dist)
    texture = 0.85 + 0.15 * np.sin(x * 0.9 + 2 * np.sin(z * 0.35)) * np.cos(z * 0.8)
    ground = np.asarray(grass, np.float32) * texture[..., None] * shade
    haze = 1.0 - np.exp(-dist / 60.0)
    ground = mix(ground, np.asarray(horizon) * 0.8 * shade, np.where(below, haze, 0))
    c.fill(below, ground)
    lake = below & (np.abs(wrap_degrees(c.az - p["lake_az"])) < p["lake_width"] / 2) & (c.el < -2.5) & (c.el > -14)
    water = (200, 215, 230) if p["season"] == "winter" else (40, 90, 150)
    ripples = 0.9 + 0.1 * np.sin(z * 3.0 + x)
    c.fill(lake, np.asarray(water, np.float32) * ripples[..., None] * shade)
    for o in sorted(p["objects"], key=lambda o: -o["distance"]):
        _outdoor_object(c, o, shade, p["season"])


def _outdoor_object(c: Canvas, o: dict[str, Any], shade: float, season: str) -> None:
    az, d, s = o["az"], o["distance"], o["scale"]
    col = np.asarray(COLORS[o["color"]], np.float32) * shade
    if o["kind"] in ("pine tree", "round tree"):
        w, lo, hi = _span(d, 0.5 * s, 0, 2.0 * s)
        c.fill(c.box(az, w, lo, hi), np.array((90, 60, 35)) * shade)
        leaf = np.array((235, 240, 245) if season == "winter" else (30, 100, 45) if season == "summer" else (200, 90, 30)) * shade
        if o["kind"] == "pine tree":
            w, lo, hi = _span(d, 3.0 * s, 1.2 * s, 8.0 * s)
            c.fill(c.triangle(az, w, lo, hi), leaf * 0.85)
        else:
            w, lo, hi = _span(d, 3.6 * s, 1.5 * s, 6.0 * s)
            c.fill(c.ellipse(az, (lo + hi) / 2, w / 2, (hi - lo) / 2), leaf)
    elif o["kind"] == "cabin":
        w, lo, hi = _span(d, 5.0 * s, 0, 3.0 * s)
        c.fill(c.box(az, w, lo, hi), col)
        _, _, apex = _span(d, 0, 0, 5.0 * s)
        c.fill(c.triangle(az, w * 1.15, hi, apex), np.array((70, 40, 35)) * shade)
        dw, dlo, dhi = _span(d, 1.0 * s, 0, 2.0 * s)
        c.fill(c.box(az - w * 0.2, dw, dlo, dhi), np.array((60, 35, 20)) * shade)
        ww, wlo, whi = _span(d, 1.0 * s, 1.3 * s, 2.3 * s)
        c.fill(c.box(az + w * 0.22, ww, wlo, whi), np.array((250, 220, 120)) * (1.0 if shade < 1 else 0.8))
    elif o["kind"] == "rock":
        w, lo, hi = _span(d, 3.0 * s, 0, 1.6 * s)
        c.fill(c.ellipse(az, lo, w / 2, (hi - lo)), np.array((118, 112, 108)) * shade)
    else:  # tower
        w, lo, hi = _span(d * 1.6, 3.0 * s, 0, 16.0 * s)
        c.fill(c.box(az, w, lo, hi), np.array((150, 140, 125)) * shade)
        _, _, apex = _span(d * 1.6, 0, 0, 21.0 * s)
        c.fill(c.triangle(az, w * 1.3, hi, apex), col)
        for k in range(3):
            ww, wlo, whi = _span(d * 1.6, 0.8 * s, (4 + 4 * k) * s, (5.5 + 4 * k) * s)
            c.fill(c.box(az, ww, wlo, whi), np.array((40, 35, 40)))


# --- indoor: a box-shaped room, ray-cast onto walls, floor and ceiling -----------------------------------------------
_ROOMS = ("living room", "kitchen", "bedroom", "office", "gallery")
_FLOORS = {"wooden": (150, 100, 60), "tiled": (200, 200, 195), "carpeted": (120, 50, 60)}
_WALL_FEATURES = ("window", "door", "painting", "shelf", "poster", "painting")


def sample_indoor(rng: np.random.Generator) -> dict[str, Any]:
    walls = [_pick(rng, ("beige", "white", "teal", "green", "blue", "pink", "yellow", "grey")) for _ in range(4)]
    half = (float(rng.uniform(2.5, 4.5)), float(rng.uniform(2.5, 4.5)))
    features = []
    for wall in range(4):
        length = 2 * (half[1] if wall < 2 else half[0])
        n = int(rng.integers(1, 4))
        edges = np.linspace(-length / 2, length / 2, n + 1)
        for k in range(n):
            kind = _pick(rng, _WALL_FEATURES)
            u = float(rng.uniform(edges[k] + 0.9, edges[k + 1] - 0.9)) if edges[k + 1] - edges[k] > 1.8 else float((edges[k] + edges[k + 1]) / 2)
            features.append({"wall": wall, "kind": kind, "u": u, "color": _pick(rng, ("red", "blue", "yellow", "green", "purple", "orange", "navy")),
                             "color2": _pick(rng, ("white", "black", "yellow", "teal", "pink")), "pattern": int(rng.integers(3))})
    return {"room": _pick(rng, _ROOMS), "walls": walls, "floor": _pick(rng, list(_FLOORS)), "half": half,
            "ceiling": float(rng.uniform(2.6, 3.4)), "features": features, "lamp_color": _pick(rng, ("white", "yellow", "orange"))}


def caption_indoor(p: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for f in p["features"]:
        counts[f["kind"]] = counts.get(f["kind"], 0) + 1
    words = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five"}
    plural = {"shelf": "shelves"}
    things = [f"{words.get(n, str(n))} {plural.get(k, k + 's')}" if n > 1 else f"a {k}" for k, n in sorted(counts.items())]
    walls = sorted(set(p["walls"]))
    article = "an" if p["room"][0] in "aeiou" else "a"
    return f"{article} {p['room']} with {_join(walls)} walls, a {p['floor']} floor, {_join(things)}"


def paint_indoor(c: Canvas, p: dict[str, Any]) -> None:
    a, b = p["half"]
    az, el = np.radians(c.az), np.radians(c.el)
    dx, dy, dz = np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)  # unit rays, (Hp, Wp) each
    tx = a / np.maximum(np.abs(dx), 1e-6)
    tz = b / np.maximum(np.abs(dz), 1e-6)
    t = np.minimum(tx, tz)
    height = EYE_HEIGHT + t * dy  # height of the wall hit point above the floor
    on_x = tx < tz
    wall = np.where(on_x, np.where(dx > 0, 2, 3), np.where(dz > 0, 0, 1))  # 0:+z 1:-z 2:+x 3:-x
    u = np.where(on_x, t * dz * np.sign(dx), -t * dx * np.sign(dz))  # position along the wall, metres
    for k, name in enumerate(p["walls"]):
        base = np.asarray(COLORS[name], np.float32)
        c.fill(wall == k, base * (0.92 + 0.08 * np.cos(k * 1.3)))
    for f in p["features"]:
        _wall_feature(c, f, (wall == f["wall"]) & (height > 0) & (height < p["ceiling"]), u, height)
    # skirting board and floor
    c.fill((height < 0.12) & (height >= 0), (90, 70, 55))
    floor = height < 0
    t_floor = EYE_HEIGHT / np.maximum(-dy, 1e-6)
    fx, fz = t_floor * dx, t_floor * dz
    kind = p["floor"]
    if kind == "wooden":
        tex = 0.85 + 0.15 * ((np.floor(fx / 0.25) % 2) * 0.6 + 0.4 * np.sin(fz * 3 + np.floor(fx / 0.25) * 7.1))
    elif kind == "tiled":
        tex = 0.8 + 0.2 * ((np.floor(fx / 0.6) + np.floor(fz / 0.6)) % 2)
    else:
        tex = 0.9 + 0.1 * np.sin(fx * 9) * np.sin(fz * 9)
    c.fill(floor, np.asarray(_FLOORS[kind], np.float32) * tex[..., None])
    ceiling = height > p["ceiling"]
    c.fill(ceiling, (235, 232, 225))
    t_ceil = (p["ceiling"] - EYE_HEIGHT) / np.maximum(dy, 1e-6)
    cx, cz = t_ceil * dx, t_ceil * dz
    lamp = ceiling & ((cx / 0.5) ** 2 + (cz / 0.5) ** 2 < 1.0)
    c.fill(lamp, COLORS[p["lamp_color"]])


def _wall_feature(c: Canvas, f: dict[str, Any], on_wall: np.ndarray, u: np.ndarray, h: np.ndarray) -> None:
    du = u - f["u"]
    col, col2 = np.asarray(COLORS[f["color"]], np.float32), np.asarray(COLORS[f["color2"]], np.float32)

    def rect(half_w: float, low: float, high: float) -> np.ndarray:
        return on_wall & (np.abs(du) <= half_w) & (h >= low) & (h <= high)

    if f["kind"] == "window":
        c.fill(rect(0.75, 0.9, 2.2), (240, 240, 240))
        glass = rect(0.65, 1.0, 2.1)
        c.fill(glass, mix((150, 200, 240), (90, 150, 220), np.clip((h - 1.0) / 1.1, 0, 1)))
        c.fill(glass & ((np.abs(du) < 0.03) | (np.abs(h - 1.55) < 0.03)), (240, 240, 240))
    elif f["kind"] == "door":
        c.fill(rect(0.5, 0.0, 2.05), col * 0.6 + 40)
        c.fill(rect(0.42, 0.0, 1.97), col * 0.7)
        c.fill(on_wall & ((du - 0.3) ** 2 / 0.003 + (h - 1.0) ** 2 / 0.003 < 1), (220, 200, 80))
    elif f["kind"] == "painting":
        c.fill(rect(0.6, 1.1, 2.0), (110, 80, 30))
        inner = rect(0.5, 1.2, 1.9)
        c.fill(inner, col2)
        if f["pattern"] == 0:
            c.fill(inner & (np.sin(du * 25) > 0), col)
        elif f["pattern"] == 1:
            c.fill(inner & (du**2 + (h - 1.55) ** 2 < 0.09), col)
        else:
            c.fill(inner & (h - 1.2 < 0.7 * (1 - np.abs(du) / 0.5)), col)
    elif f["kind"] == "shelf":
        board = (110, 75, 45)
        for level in (0.4, 0.9, 1.4, 1.9):
            c.fill(rect(0.8, level - 0.04, level), board)
            books = rect(0.75, level, level + 0.35) & (np.sin(du * 40 + level * 5) > -0.3)
            c.fill(books, mix(col, col2, 0.5 + 0.5 * np.sin(du * 13 + level)))
    else:  # poster
        c.fill(rect(0.4, 1.2, 2.1), col)
        c.fill(rect(0.3, 1.75, 1.95), col2)
        c.fill(rect(0.3, 1.3, 1.4), col2 * 0.8)


# --- city: a street with a ring of building facades ------------------------------------------------------------------
_CITY_TIMES = {"morning": ((200, 215, 235), (110, 150, 210)), "dusk": ((240, 150, 100), (60, 55, 120)), "night": ((30, 35, 60), (5, 8, 20))}


def sample_city(rng: np.random.Generator) -> dict[str, Any]:
    widths = rng.uniform(18, 45, size=14)
    widths = widths[: int(np.searchsorted(np.cumsum(widths), 360.0)) + 1]
    widths = widths / widths.sum() * 360.0
    start = float(rng.uniform(0, 360))
    buildings = []
    for w in widths:
        buildings.append({"az": float((start + w / 2) % 360), "width": float(w) - 1.5, "height": float(rng.uniform(8, 45)),
                          "distance": float(rng.uniform(12, 20)), "color": _pick(rng, ("grey", "beige", "brown", "blue", "maroon", "white", "teal", "navy")),
                          "window_seed": float(rng.uniform(0, 100))})
        start += float(w)
    cars = [{"az": az, "color": _pick(rng, ("red", "yellow", "blue", "white", "black", "green")), "distance": float(rng.uniform(6, 10))}
            for az in _spread(rng, int(rng.integers(2, 6)), 30)]
    lamps = _spread(rng, int(rng.integers(3, 7)), 25)
    return {"time": _pick(rng, list(_CITY_TIMES)), "buildings": buildings, "cars": cars, "lamps": lamps, "road_az": float(rng.uniform(0, 180))}


def caption_city(p: dict[str, Any]) -> str:
    colors = sorted({b["color"] for b in p["buildings"]})[:3]
    tall = sum(b["height"] > 30 for b in p["buildings"])
    cars = sorted({c["color"] for c in p["cars"]})
    return (f"a city street at {p['time']} with {'tall ' if tall >= 3 else ''}{_join(colors)} buildings, "
            f"{_join(cars)} cars and street lamps")


def paint_city(c: Canvas, p: dict[str, Any]) -> None:
    horizon, zenith = _CITY_TIMES[p["time"]]
    night = p["time"] == "night"
    _sky(c, horizon, zenith, None if night else (238, 238, 242), 0.3)
    shade = 0.5 if night else 1.0
    x, z, dist = c.ground(EYE_HEIGHT)
    below = np.isfinite(dist)
    ra = np.radians(p["road_az"])
    across = x * np.cos(ra) - z * np.sin(ra)  # distance from the road's centre line
    along = x * np.sin(ra) + z * np.cos(ra)
    c.fill(below, np.array((150, 148, 140)) * shade)  # pavement
    c.fill(below & (np.abs(across) < 5.0), np.array((60, 60, 65)) * shade)
    c.fill(below & (np.abs(across) < 0.12) & ((along % 6.0) < 3.0), np.array((235, 210, 60)) * shade)
    for b in p["buildings"]:
        _building(c, b, shade, night)
    for car in p["cars"]:
        w, lo, hi = _span(car["distance"], 4.2, 0.2, 1.4)
        col = np.asarray(COLORS[car["color"]], np.float32) * shade
        c.fill(c.box(car["az"], w, lo, hi), col)
        _, _, top = _span(car["distance"], 0, 0, 2.0)
        c.fill(c.box(car["az"], w * 0.55, hi, top), col * 0.85)
        c.fill(c.box(car["az"], w * 0.45, hi + (top - hi) * 0.2, top - (top - hi) * 0.15), np.array((140, 180, 210)) * shade)
        _, wlo, whi = _span(car["distance"], 0, 0.0, 0.6)
        for side in (-0.3, 0.3):
            c.fill(c.ellipse(car["az"] + side * w, (wlo + whi) / 2, w * 0.1, (whi - wlo) / 2), (25, 25, 25))
    for az in p["lamps"]:
        w, lo, hi = _span(5.5, 0.15, 0, 5.0)
        c.fill(c.box(az, w, lo, hi), (50, 55, 60))
        c.fill(c.ellipse(az, hi, w * 4, w * 3), (255, 235, 150) if night else (225, 225, 210))


def _building(c: Canvas, b: dict[str, Any], shade: float, night: bool) -> None:
    d = b["distance"]
    offset = wrap_degrees(c.az - b["az"])
    facade = (np.abs(offset) <= b["width"] / 2) & (c.el <= np.degrees(np.arctan((b["height"] - EYE_HEIGHT) / d)))
    col = np.asarray(COLORS[b["color"]], np.float32)
    c.fill(facade, col * (0.8 if not night else 0.35))
    height = EYE_HEIGHT + d * np.tan(np.radians(c.el))  # metres up the facade
    across = d * np.radians(offset)  # metres along the facade
    floor_idx, col_idx = np.floor(height / 3.2), np.floor((across + 200) / 2.4)
    window = facade & (height > 3.5) & ((height % 3.2) > 1.0) & ((height % 3.2) < 2.6) & (((across + 200) % 2.4) < 1.4)
    lit = np.sin(floor_idx * 12.9898 + col_idx * 78.233 + b["window_seed"]) > (0.2 if night else 2.0)
    c.fill(window, np.array((60, 75, 95)) * shade)
    c.fill(window & lit, (250, 215, 120))
    door = facade & (height < 2.6) & (np.abs(across) < 1.0)
    c.fill(door, col * 0.35)


# --- game: a bright platformer level ---------------------------------------------------------------------------------
_GAME_SKIES = {"blue": ((150, 210, 255), (70, 140, 250)), "sunset": ((255, 180, 120), (180, 90, 200)), "mint": ((190, 250, 220), (80, 200, 190))}


def sample_game(rng: np.random.Generator) -> dict[str, Any]:
    n = int(rng.integers(10, 15))
    objects = [{"kind": _pick(rng, ("question block", "brick platform", "pipe", "coin", "pillar", "flag")), "az": az,
                "distance": float(rng.uniform(5, 12)), "height": float(rng.uniform(2.5, 6.0)),
                "color": _pick(rng, ("red", "blue", "purple", "orange", "pink", "lime"))} for az in _spread(rng, n)]
    floor = [_pick(rng, ("lime", "yellow", "orange", "pink", "teal")), _pick(rng, ("white", "purple", "blue", "green"))]
    hills = [{"az": az, "width": float(rng.uniform(20, 45)), "height": float(rng.uniform(4, 16)),
              "color": _pick(rng, ("green", "lime", "teal", "purple", "orange", "pink", "blue"))} for az in _spread(rng, 10, 30)]
    return {"sky": _pick(rng, list(_GAME_SKIES)), "floor": floor, "objects": objects, "hills": hills}


def caption_game(p: dict[str, Any]) -> str:
    names = {"question block": "floating question blocks", "brick platform": "brick platforms", "pipe": "green pipes",
             "coin": "gold coins", "pillar": "striped pillars", "flag": "a goal flag"}
    kinds = sorted({o["kind"] for o in p["objects"]})
    return (f"a colorful platform game level under a {p['sky']} sky with a {p['floor'][0]} and {p['floor'][1]} "
            f"checkered floor, {_join([names[k] for k in kinds])}")


def paint_game(c: Canvas, p: dict[str, Any]) -> None:
    horizon, zenith = _GAME_SKIES[p["sky"]]
    _sky(c, horizon, zenith, None, 0.0)
    blocky = (np.floor(c.az / 6) + np.floor(c.el / 4)) % 3 == 0
    clouds = (c.noise(2.0, octaves=2) > 0.55) & (c.el > 15) & blocky
    c.fill(clouds, (255, 255, 255))
    for hill in p["hills"]:  # a backdrop of stepped, coloured hills: every direction looks different
        offset = np.abs(wrap_degrees(c.az - hill["az"])) / (hill["width"] / 2)
        top = hill["height"] * (1.0 - np.floor(offset * 4) / 4)
        col = np.asarray(COLORS[hill["color"]], np.float32)
        c.fill((offset <= 1.0) & (c.el >= 0) & (c.el <= top), col * 0.85)
        c.fill((offset <= 1.0) & (c.el >= 0) & (c.el <= top) & (np.abs(c.el - top) < 0.8), col * 0.6 + 100)
    x, z, dist = c.ground(EYE_HEIGHT)
    below = np.isfinite(dist)
    checker = ((np.floor(x / 1.5) + np.floor(z / 1.5)) % 2).astype(bool)
    a, b = (np.asarray(COLORS[n], np.float32) for n in p["floor"])
    c.fill(below & checker, a)
    c.fill(below & ~checker, b)
    for o in sorted(p["objects"], key=lambda o: -o["distance"]):
        _game_object(c, o)


def _game_object(c: Canvas, o: dict[str, Any]) -> None:
    az, d, h = o["az"], o["distance"], o["height"]
    col = np.asarray(COLORS[o["color"]], np.float32)
    if o["kind"] == "question block":
        w, lo, hi = _span(d, 1.2, h, h + 1.2)
        c.fill(c.box(az, w, lo, hi), (150, 90, 20))
        c.fill(c.box(az, w * 0.82, lo + (hi - lo) * 0.09, hi - (hi - lo) * 0.09), (250, 190, 40))
        c.fill(c.box(az, w * 0.18, lo + (hi - lo) * 0.25, hi - (hi - lo) * 0.25), (150, 90, 20))
    elif o["kind"] == "brick platform":
        w, lo, hi = _span(d, 5.0, h, h + 0.9)
        mask = c.box(az, w, lo, hi)
        c.fill(mask, (180, 80, 40))
        mortar = mask & ((np.abs(wrap_degrees(c.az - az)) % (w / 5) < w / 40) | (np.abs(c.el - (lo + hi) / 2) < (hi - lo) / 14))
        c.fill(mortar, (230, 200, 160))
    elif o["kind"] == "pipe":
        w, lo, hi = _span(d, 1.6, 0, 2.2)
        c.fill(c.box(az, w, lo, hi), (40, 170, 60))
        _, top_lo, top_hi = _span(d, 0, 2.2, 2.7)
        c.fill(c.box(az, w * 1.25, hi, top_hi), (60, 200, 80))
        c.fill(c.box(az - w * 0.25, w * 0.12, lo, top_hi), (150, 240, 160))
    elif o["kind"] == "coin":
        w, lo, hi = _span(d, 0.7, h, h + 1.0)
        c.fill(c.ellipse(az, (lo + hi) / 2, w / 2, (hi - lo) / 2), (250, 210, 40))
        c.fill(c.ellipse(az, (lo + hi) / 2, w / 6, (hi - lo) / 3.5), (200, 150, 20))
    elif o["kind"] == "pillar":
        w, lo, hi = _span(d, 1.4, 0, h + 3)
        mask = c.box(az, w, lo, hi)
        c.fill(mask, col)
        c.fill(mask & ((c.el * 2.0) % 3.0 < 1.2), (255, 255, 255))
    else:  # flag
        w, lo, hi = _span(d, 0.2, 0, h + 3)
        c.fill(c.box(az, w, lo, hi), (200, 200, 210))
        fw, flo, fhi = _span(d, 2.0, h + 1.8, h + 2.9)
        c.fill(c.triangle(az + fw / 2, fw, flo, fhi) | c.box(az + fw / 2, fw, flo, (flo + fhi) / 2), col)


@dataclass(frozen=True)
class Style:
    name: str
    sample: Callable[[np.random.Generator], dict[str, Any]]
    paint: Callable[[Canvas, dict[str, Any]], None]
    caption: Callable[[dict[str, Any]], str]


STYLES: dict[str, Style] = {
    "outdoor": Style("outdoor", sample_outdoor, paint_outdoor, caption_outdoor),
    "indoor": Style("indoor", sample_indoor, paint_indoor, caption_indoor),
    "city": Style("city", sample_city, paint_city, caption_city),
    "game": Style("game", sample_game, paint_game, caption_game),
}
