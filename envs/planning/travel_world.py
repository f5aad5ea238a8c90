"""Travel worlds: a seeded destination city with timetables, attractions, restaurants, hotels and local routes.

Everything is a pure function of a `np.random.Generator`. Distances are kept in tenths of a kilometre
(integers) so route times and fares are exact integer arithmetic, identical in the generator, the
tools, the checker and any agent that applies the published rule.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = [
    "WEEKDAYS",
    "ATTRACTION_TYPES",
    "CUISINES",
    "HOTEL_BRANDS",
    "TravelTier",
    "TRAVEL_TIERS",
    "Attraction",
    "Restaurant",
    "Hotel",
    "Transport",
    "Route",
    "Trip",
    "TravelWorld",
    "clock",
    "parse_clock",
    "route_between",
    "station_name",
    "generate_world",
    "names",
    "ROUTE_RULE",
]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# DeepPlanning's six attraction categories (recommend_attractions' `attraction_type`).
ATTRACTION_TYPES = (
    "Historical and Cultural",
    "Natural Scenery",
    "Art Exhibition",
    "City Landmark",
    "Theme Park",
    "Leisure Experience",
)
_TYPE_SUFFIXES = {
    "Historical and Cultural": ("Temple", "Old Fort", "Heritage Hall", "Ancient Wall"),
    "Natural Scenery": ("Falls", "Lake", "Gorge", "Forest Park"),
    "Art Exhibition": ("Gallery", "Art Museum", "Design Hall"),
    "City Landmark": ("Tower", "Square", "Bridge", "Clock Tower"),
    "Theme Park": ("Fun Park", "Adventure World", "Water Park"),
    "Leisure Experience": ("Hot Springs", "Tea Garden", "Spa Street"),
}
CUISINES = ("Local", "Seafood", "Sichuan", "Italian", "Japanese", "Vegetarian", "Barbecue", "French")
_RESTAURANT_SUFFIXES = ("Kitchen", "Bistro", "House", "Grill", "Diner", "Table")
HOTEL_BRANDS = ("Harbor Inn", "Summit", "Lantern", "Meridian", "Cedar Lodge", "Nova")
SEAT_CLASSES = {"train": ("second", "first"), "flight": ("economy", "business")}

#: The local-transport rule, stated once for the instructions, the tools and the checker.
ROUTE_RULE = (
    "distance = straight-line km between the two places, rounded to 0.1 km. Up to 2.0 km you walk: "
    "minutes = ceil(12 x km), free. Farther you take taxis: minutes = 5 + ceil(2.4 x km), fare per taxi = "
    "8 + ceil(2.5 x km), one taxi per 4 travellers."
)
_WALK_MAX_DECIKM = 20
_CITY_RADIUS_DECIKM = 60


@dataclass(frozen=True)
class TravelTier:
    """Sizes of one difficulty tier.

    Attributes:
        num_cities: cities on the map (the origin, the destination and distractors).
        days: inclusive range of trip lengths in days.
        travellers: inclusive range of party sizes.
        attractions: attractions in the destination.
        restaurants: restaurants in the destination.
        hotels: hotels in the destination.
        departures: trains and flights (each) per direction per date.
        num_constraints: hard-constraint templates per task (the budget comes on top).
        budget_slack: budget = witness cost x (1 + budget_slack).
        max_turns: tool calls per episode.
    """

    num_cities: int
    days: tuple[int, int]
    travellers: tuple[int, int]
    attractions: int
    restaurants: int
    hotels: int
    departures: int
    num_constraints: int
    budget_slack: float
    max_turns: int


TRAVEL_TIERS = {
    "easy": TravelTier(3, (2, 2), (1, 2), 8, 8, 5, 3, 2, 0.15, 40),
    "medium": TravelTier(4, (2, 3), (1, 4), 14, 12, 8, 4, 3, 0.10, 60),
    "hard": TravelTier(5, (3, 4), (2, 6), 22, 18, 12, 5, 5, 0.05, 80),
}


# Records are named tuples: immutable, compared by value, and several times cheaper to build than
# frozen dataclasses (a world holds a few hundred of them and is drawn at every reset).
class Attraction(NamedTuple):
    """An attraction; times are minutes after midnight, `closed_weekday` is 0-6 or -1 (never closed)."""

    name: str
    type: str
    rating: float
    price: int
    open: int
    close: int
    closed_weekday: int
    min_visit: int
    max_visit: int
    x: int
    y: int


class Restaurant(NamedTuple):
    """A restaurant; `price` is per person, hours in minutes after midnight, coordinates in 0.1 km."""

    name: str
    cuisine: str
    price: int
    rating: float
    open: int
    close: int
    x: int
    y: int


class Hotel(NamedTuple):
    """A hotel; `price` is per room and night."""

    name: str
    brand: str
    stars: int
    price: int
    rating: float
    x: int
    y: int


class Transport(NamedTuple):
    """One intercity departure; `price` is per person, `seats` the seats left (shown only in details)."""

    number: str
    mode: str
    origin: str
    destination: str
    date: str
    depart: int
    arrive: int
    seat_class: str
    price: int
    seats: int
    stops: int


class Route(NamedTuple):
    """A local trip between two places: distance in km, mode, minutes and the party's cost."""

    distance: float
    mode: str
    minutes: int
    cost: int


@dataclass(frozen=True)
class Trip:
    """The public facts of a trip: where, when, and who."""

    origin: str
    destination: str
    dates: tuple[str, ...]
    weekdays: tuple[int, ...]
    travellers: int

    @property
    def days(self) -> int:
        return len(self.dates)

    @property
    def rooms(self) -> int:
        """Two travellers share a room."""
        return (self.travellers + 1) // 2

    @property
    def taxis(self) -> int:
        """One taxi carries four travellers."""
        return (self.travellers + 3) // 4


@dataclass(frozen=True)
class TravelWorld:
    """The sandbox database of one task: the destination's places and the trip's timetables."""

    cities: tuple[str, ...]
    destination: str
    attractions: tuple[Attraction, ...]
    restaurants: tuple[Restaurant, ...]
    hotels: tuple[Hotel, ...]
    transports: tuple[Transport, ...]
    station: tuple[int, int]
    airport: tuple[int, int]
    _index: dict = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        places = {station_name(self.destination, "train"): self.station, station_name(self.destination, "flight"): self.airport}
        entities: dict = {}
        for collection in (self.attractions, self.restaurants, self.hotels):
            for item in collection:
                places[item.name] = (item.x, item.y)
                entities[item.name] = item
        transports = {(t.number, t.date): t for t in self.transports}
        object.__setattr__(self, "_index", {"places": places, "entities": entities, "transports": transports})

    def place(self, name: str) -> tuple[int, int] | None:
        """Coordinates (0.1 km) of a named place in the destination, or None."""
        return self._index["places"].get(name)

    def entity(self, name: str):
        """The attraction, restaurant or hotel with this name, or None."""
        return self._index["entities"].get(name)

    def transport(self, number: str, date: str) -> Transport | None:
        """The departure `number` on `date`, or None."""
        return self._index["transports"].get((number, date))

    def place_names(self) -> list[str]:
        """Every named place in the destination (stations, attractions, restaurants, hotels)."""
        return list(self._index["places"])


def clock(minute: int) -> str:
    """Minutes after midnight as `HH:MM`."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_clock(text: object) -> int | None:
    """`HH:MM` (00:00-23:59) as minutes after midnight, or None when malformed."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        return None
    hours, minutes = text[:2], text[3:]
    if not (hours.isdigit() and minutes.isdigit() and hours.isascii() and minutes.isascii()):
        return None
    hour, minute = int(hours), int(minutes)
    return hour * 60 + minute if hour < 24 and minute < 60 else None


def station_name(city: str, mode: str) -> str:
    """Where a train (`Railway Station`) or flight (`Airport`) of `city` leaves and arrives."""
    return f"{city} Railway Station" if mode == "train" else f"{city} Airport"


def route_between(a: tuple[int, int], b: tuple[int, int], travellers: int, surcharge: bool = False) -> Route:
    """The local route between coordinates `a` and `b` (0.1 km) under `ROUTE_RULE`.

    Args:
        a: start coordinates.
        b: end coordinates.
        travellers: party size (one taxi per four).
        surcharge: charge the hidden evening surcharge (x1.5, rounded up) on taxi fares.

    Returns:
        The route; `cost` is the whole party's.
    """
    decikm = int(round(math.hypot(a[0] - b[0], a[1] - b[1])))
    if decikm <= _WALK_MAX_DECIKM:
        return Route(decikm / 10, "walk", (decikm * 12 + 9) // 10, 0)
    fare = 8 + (decikm * 25 + 99) // 100
    if surcharge:
        fare = (fare * 3 + 1) // 2
    return Route(decikm / 10, "taxi", 5 + (decikm * 24 + 99) // 100, fare * ((travellers + 3) // 4))


# ----------------------------------------------------------------------------- generator
_ONSETS = ("b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou")
_CODAS = ("", "", "n", "r", "s", "l", "m")


def _int_rows(u: np.ndarray, bounds: list[tuple[int, int]]) -> list[list[int]]:
    """Rows of integers, column j in [low_j, high_j), from a matrix of uniform draws in [0, 1).

    Each generator draws one uniform matrix and derives every attribute from a column: numpy's
    per-call overhead, not arithmetic, dominated generation time with one draw per attribute.
    """
    low = np.array([b[0] for b in bounds])
    span = np.array([b[1] - b[0] for b in bounds])
    return (low + (u * span).astype(np.int64)).tolist()


_SYLLABLES = tuple(onset + vowel for onset in _ONSETS for vowel in _VOWELS)


def names(rng: np.random.Generator, count: int, used: set[str]) -> list[str]:
    """`count` new pronounceable names (2-3 syllables) not in `used`; adds them to `used`."""
    found: list[str] = []
    bounds = [(0, 2), (0, len(_SYLLABLES)), (0, len(_SYLLABLES)), (0, len(_SYLLABLES)), (0, len(_CODAS))]
    while len(found) < count:
        for three, first, second, third, coda in _int_rows(rng.random((2 * (count - len(found)) + 4, 5)), bounds):
            name = (_SYLLABLES[first] + _SYLLABLES[second] + (_SYLLABLES[third] if three else "") + _CODAS[coda]).capitalize()
            if name not in used and len(name) <= 12 and len(found) < count:
                used.add(name)
                found.append(name)
    return found


def _points(rng: np.random.Generator, count: int, radius: int) -> list[tuple[int, int]]:
    """`count` uniform points (0.1 km) in a disc of `radius` around the origin."""
    points: list[tuple[int, int]] = []
    while len(points) < count:
        draws = rng.integers(-radius, radius + 1, size=(2 * count + 4, 2))
        inside = draws[(draws**2).sum(axis=1) <= radius * radius]
        points += [tuple(row) for row in inside[: count - len(points)].tolist()]
    return points


def _attractions(rng, count: int, used: set[str]) -> list[Attraction]:
    bases = names(rng, count, used)
    points = _points(rng, count, _CITY_RADIUS_DECIKM)
    bounds = [(0, len(ATTRACTION_TYPES)), (0, 100), (0, 100), (2, 31), (0, 9), (0, 13), (0, 7), (30, 51), (0, 12), (0, 3), (0, 4)]
    result = []
    for i, row in enumerate(_int_rows(rng.random((count, len(bounds))), bounds)):
        kind_index, free_draw, closed_draw, price, opens, closes, weekday, rating, suffix, visit, extra = row
        kind = ATTRACTION_TYPES[kind_index]
        # Scenery and landmarks are more often free, as in DeepPlanning's databases.
        free = free_draw < (50 if kind in ("Natural Scenery", "City Landmark") else 20)
        suffixes = _TYPE_SUFFIXES[kind]
        min_visit = (60, 90, 120)[visit]
        result.append(Attraction(
            f"{bases[i]} {suffixes[suffix % len(suffixes)]}", kind, rating / 10, 0 if free else 5 * price,
            360 + 30 * opens, 960 + 30 * closes, weekday if closed_draw < 35 else -1, min_visit,
            min_visit + (60, 90, 120, 180)[extra], *points[i],
        ))
    return result


def _restaurants(rng, count: int, used: set[str], near: list[Attraction]) -> list[Restaurant]:
    bases = names(rng, count, used)
    spread = _points(rng, count, _CITY_RADIUS_DECIKM)
    offsets = _points(rng, count, 15)
    bounds = [(0, len(_RESTAURANT_SUFFIXES)), (0, len(CUISINES)), (3, 31), (30, 51), (0, 9), (0, 7)]
    result = []
    for i, (suffix, cuisine, price, rating, opens, closes) in enumerate(_int_rows(rng.random((count, 6)), bounds)):
        # Half of them cluster around attractions, as restaurants do around sights.
        anchor = near[i % len(near)] if i % 2 == 0 and near else None
        x, y = (anchor.x + offsets[i][0], anchor.y + offsets[i][1]) if anchor else spread[i]
        result.append(Restaurant(
            f"{bases[i]} {_RESTAURANT_SUFFIXES[suffix]}", CUISINES[cuisine], 5 * price, rating / 10, 420 + 30 * opens,
            (900, 1230, 1260, 1290, 1320, 1350, 1380)[closes], x, y,
        ))
    return result


def _hotels(rng, count: int, used: set[str]) -> list[Hotel]:
    bases = names(rng, count, used)
    points = _points(rng, count, _CITY_RADIUS_DECIKM)
    bounds = [(2, 6), (-6, 7), (0, 15), (0, len(HOTEL_BRANDS))]
    result = []
    for i, (stars, jitter, price, brand) in enumerate(_int_rows(rng.random((count, 4)), bounds)):
        # Ratings follow stars loosely (+-0.6), clipped to 3.0-5.0.
        rating = min(50, max(30, stars * 5 + 20 + jitter)) / 10
        name = HOTEL_BRANDS[brand]
        result.append(Hotel(f"{name} {bases[i]}", name, stars, 60 * stars + 10 * price, rating, *points[i]))
    return result


def _timetable(rng, legs: list[tuple[str, str, str, str]], trip_km: float) -> list[Transport]:
    """One departure per (mode, origin, destination, date) in `legs`, all drawn in one batch."""
    bounds = [(0, 100), (0, 7), (0, 13), (0, 100), (0, 100), (0, 187), (0, 4), (4, 40), (0, 4), (100, 10000)]
    train_minutes, train_price = int(round(trip_km / 220 * 60)) + 20, int(round(trip_km * 0.45 / 5)) * 5
    flight_minutes = int(round(trip_km / 750 * 60)) + 45
    used: set[str] = set()
    result = []
    for (mode, origin, destination, date), row in zip(legs, _int_rows(rng.random((len(legs), 10)), bounds), strict=True):
        stop_draw, jitter_minutes, jitter_price, premium_draw, scarce_draw, depart, low, high, prefix, suffix = row
        premium = premium_draw < 30
        if mode == "train":
            stops, minutes, price = 0, train_minutes + 5 * jitter_minutes, train_price + 5 * jitter_price
        else:
            stops = int(stop_draw < 35)
            minutes = flight_minutes + 100 * stops + 5 * jitter_minutes
            price = int(round((150 + trip_km * 0.35) * (0.8 if stops else 1.0) / 5)) * 5 + 5 * jitter_price
        if premium:
            price = int(round(price * (1.6 if mode == "train" else 2.2) / 5)) * 5
        depart = min(360 + 5 * depart, 1435 - minutes)
        head = "G" if mode == "train" else ("CA", "MU", "ZH", "HU")[prefix]
        number = f"{head}{suffix}"
        while number in used:
            number = f"{head}{int(rng.integers(100, 10000))}"
        used.add(number)
        result.append(Transport(number, mode, origin, destination, date, depart, depart + minutes,
                                SEAT_CLASSES[mode][int(premium)], price, low if scarce_draw < 20 else high, stops))
    return result


def generate_world(rng: np.random.Generator, tier: TravelTier) -> tuple[TravelWorld, Trip]:
    """Draw a world and the public trip facts for one tier.

    Args:
        rng: the env's generator.
        tier: sizes.

    Returns:
        The world (the destination's database and the trip's timetables) and the trip.
    """
    used: set[str] = set()
    cities = names(rng, tier.num_cities, used)
    positions = [tuple(int(v) for v in rng.integers(0, 1200, size=2)) for _ in cities]
    origin_index, destination_index = (int(v) for v in rng.choice(len(cities), size=2, replace=False))
    trip_km = math.dist(positions[origin_index], positions[destination_index])
    if trip_km < 300:
        # Nearby cities would make flights pointless; the map only sets distances, so stretch this one.
        trip_km += 300
    origin, destination = cities[origin_index], cities[destination_index]
    num_days = int(rng.integers(tier.days[0], tier.days[1] + 1))
    start = datetime.date(2026, 3, 2) + datetime.timedelta(days=int(rng.integers(0, 120)))
    dates = tuple((start + datetime.timedelta(days=d)).isoformat() for d in range(num_days))
    weekdays = tuple((start + datetime.timedelta(days=d)).weekday() for d in range(num_days))
    travellers = int(rng.integers(tier.travellers[0], tier.travellers[1] + 1))

    attractions = _attractions(rng, tier.attractions, used)
    restaurants = _restaurants(rng, tier.restaurants, used, attractions)
    hotels = _hotels(rng, tier.hotels, used)
    legs = [
        (mode, source, target, date)
        for date in dates
        for source, target in ((origin, destination), (destination, origin))
        for mode in ("train", "flight")
        for _ in range(tier.departures)
    ]
    transports = _timetable(rng, legs, trip_km)
    transports.sort(key=lambda t: (t.date, t.origin, t.depart, t.number))
    world = TravelWorld(
        tuple(cities), destination, tuple(attractions), tuple(restaurants), tuple(hotels), tuple(transports),
        _points(rng, 1, 20)[0], _points(rng, 1, 130)[0],
    )
    return world, Trip(origin, destination, dates, weekdays, travellers)
