"""Metric spaces on which hidden neurons are placed, with distances, sampling and geoopt views."""

from ._safe import safe_norm, safe_sqrt, sqrt_and_reciprocal
from .base import Manifold
from .circle import Circle
from .euclidean import Euclidean
from .geoopt_flat import FlatKleinBottleGeoopt, FlatTorusGeoopt
from .klein_bottle import KleinBottle
from .product import Product
from .registry import MANIFOLDS, get_manifold, manifold_from_config
from .sphere import Sphere
from .torus import Torus

__all__ = [
    "Manifold",
    "Torus",
    "KleinBottle",
    "Circle",
    "Sphere",
    "Euclidean",
    "Product",
    "FlatTorusGeoopt",
    "FlatKleinBottleGeoopt",
    "MANIFOLDS",
    "get_manifold",
    "manifold_from_config",
    "safe_sqrt",
    "safe_norm",
    "sqrt_and_reciprocal",
]
