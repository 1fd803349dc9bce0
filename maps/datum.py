"""Geodetic datums of Chinese map sources: GCJ-02 (AMap, Tencent) and BD-09 (Baidu) converted to WGS84.

GCJ-02 is WGS84 moved by a published, smooth offset of a few hundred metres; it has no closed inverse, so WGS84 is
found by fixed-point iteration on the forward formula until it reproduces the input to 1e-10 degrees (about 0.01 mm),
well under a metre. BD-09 is GCJ-02 moved once more by Baidu's published rotation, undone the same way. Outside
China's box the offset is not applied by the sources, so neither is it undone here.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

Coords = NDArray[np.float64]  # shape (N, 2): lon, lat in degrees

_A = 6378245.0  # the Krasovsky 1940 semi-major axis the GCJ-02 formula uses
_EE = 0.00669342162296594323  # and its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0
_TOLERANCE_DEG = 1e-10
_MAX_ROUNDS = 30  # the offset is smooth and small: the iteration settles in five or six rounds
_G = TypeVar("_G", bound=BaseGeometry)


class Datum(StrEnum):
    """The datum a coordinate was taken in."""

    wgs84 = "wgs84"  # GPS, CGCS2000 within a metre; what circuflow stores
    gcj02 = "gcj02"  # AMap (Gaode), Tencent and Google's China maps
    bd09 = "bd09"  # Baidu maps


def _in_china(lon: Coords, lat: Coords) -> NDArray[np.bool_]:
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _offset(lon: Coords, lat: Coords) -> tuple[Coords, Coords]:
    """GCJ-02's offset (degrees of lon, lat) at WGS84 points."""
    x, y = lon - 105.0, lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x)) + common
    d_lat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    d_lat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + common
    d_lon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    d_lon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    inside = _in_china(lon, lat)
    return np.where(inside, d_lon, 0.0), np.where(inside, d_lat, 0.0)


def wgs84_to_gcj02(coords: Coords) -> Coords:
    """The published forward formula: WGS84 to GCJ-02."""
    lon, lat = coords[:, 0], coords[:, 1]
    d_lon, d_lat = _offset(lon, lat)
    return np.column_stack([lon + d_lon, lat + d_lat])


def gcj02_to_bd09(coords: Coords) -> Coords:
    """Baidu's published forward formula: GCJ-02 to BD-09."""
    x, y = coords[:, 0], coords[:, 1]
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return np.column_stack([z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006])


def _invert(forward: Callable[[Coords], Coords], target: Coords) -> Coords:
    """The points that `forward` maps onto `target`, by fixed-point iteration (the maps are near the identity)."""
    guess = target.copy()
    for _ in range(_MAX_ROUNDS):
        miss = forward(guess) - target
        guess -= miss
        if np.all(np.abs(miss) < _TOLERANCE_DEG):
            break
    return guess


def gcj02_to_wgs84(coords: Coords) -> Coords:
    """GCJ-02 to WGS84, exact to 1e-10 degrees."""
    return _invert(wgs84_to_gcj02, coords)


def bd09_to_wgs84(coords: Coords) -> Coords:
    """BD-09 to WGS84: back to GCJ-02 first, then to WGS84."""
    return gcj02_to_wgs84(_invert(gcj02_to_bd09, coords))


_TO_WGS84: dict[Datum, Callable[[Coords], Coords]] = {
    Datum.wgs84: lambda c: c,
    Datum.gcj02: gcj02_to_wgs84,
    Datum.bd09: bd09_to_wgs84,
}


def point_to_wgs84(lon: float, lat: float, datum: Datum | str) -> tuple[float, float]:
    """One lon/lat pair in `datum`, as WGS84."""
    out = _TO_WGS84[Datum(datum)](np.array([[lon, lat]], dtype=np.float64))
    return float(out[0, 0]), float(out[0, 1])


def geometry_to_wgs84(geom: _G, datum: Datum | str) -> _G:
    """A geometry's every vertex moved from `datum` to WGS84 (the topology kept: the offset is smooth)."""
    convert = _TO_WGS84[Datum(datum)]
    if Datum(datum) is Datum.wgs84:
        return geom
    moved: _G = shapely.transform(geom, lambda c: convert(np.asarray(c, dtype=np.float64)))
    return moved


# What ledgers write for a datum, normalised (lower case, no spaces, hyphens or underscores).
_SPELLINGS = {
    "wgs84": Datum.wgs84,
    "wgs": Datum.wgs84,
    "gps": Datum.wgs84,
    "cgcs2000": Datum.wgs84,  # within a metre of WGS84: no offset to undo
    "epsg4326": Datum.wgs84,
    "gcj02": Datum.gcj02,
    "gcj": Datum.gcj02,
    "高德": Datum.gcj02,
    "腾讯": Datum.gcj02,
    "火星坐标": Datum.gcj02,
    "bd09": Datum.bd09,
    "bd09ll": Datum.bd09,
    "百度": Datum.bd09,
}


def parse_datum(text: str | None) -> Datum | None:
    """The datum a ledger names (wgs84, gcj02, bd09 and their usual spellings); None for what it cannot be."""
    key = "".join(ch for ch in (text or "").strip().lower() if ch not in " -_:")
    if not key:
        return Datum.wgs84
    return _SPELLINGS.get(key)
