"""The travel tools: declarations (OpenAI schemas) and their handlers over one world, pure and deterministic."""

from __future__ import annotations

import difflib
import re

from envs.core import printable
from envs.planning.tools import Parameter, Tool, ToolError, validate_arguments
from envs.planning.travel_checker import PLAN_SCHEMA_TEXT
from envs.planning.travel_world import (
    ATTRACTION_TYPES,
    CUISINES,
    WEEKDAYS,
    Attraction,
    Restaurant,
    TravelWorld,
    Trip,
    clock,
    route_between,
    station_name,
)

__all__ = ["TRAVEL_TOOLS", "TravelTools"]

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLACE = "a place name: an attraction, restaurant, hotel, or '<City> Railway Station' / '<City> Airport'"
TRAVEL_TOOLS = {
    tool.name: tool
    for tool in (
        Tool("search_flights", "Flights between two cities on a date: number, times, stops, class, price per person.", (
            Parameter("origin", "string", "departure city"), Parameter("destination", "string", "arrival city"),
            Parameter("date", "string", "YYYY-MM-DD"),
            Parameter("seat_class", "string", "only this class", required=False, choices=("economy", "business")))),
        Tool("search_trains", "Trains between two cities on a date: number, times, class, price per person.", (
            Parameter("origin", "string", "departure city"), Parameter("destination", "string", "arrival city"),
            Parameter("date", "string", "YYYY-MM-DD"),
            Parameter("seat_class", "string", "only this class", required=False, choices=("second", "first")))),
        Tool("get_transport_details", "One train or flight on a date, including the seats left.", (
            Parameter("number", "string", "train or flight number"), Parameter("date", "string", "YYYY-MM-DD"))),
        Tool("search_hotels", "Hotels in a city: stars, brand, price per room and night, rating, location.", (
            Parameter("city", "string", "city name"),
            Parameter("stars", "integer", "only this star class", required=False, minimum=1, maximum=5),
            Parameter("brand", "string", "only this brand", required=False))),
        Tool("recommend_attractions", "Attractions in a city: type, rating, ticket price per person, location.", (
            Parameter("city", "string", "city name"),
            Parameter("attraction_type", "string", "only this type", required=False, choices=ATTRACTION_TYPES))),
        Tool("get_attraction_details", "Opening hours, weekly closing day and visit length of an attraction.", (
            Parameter("name", "string", "attraction name"),)),
        Tool("recommend_restaurants", "Restaurants near a place, nearest first: cuisine, price per person, rating.", (
            Parameter("near", "string", _PLACE),
            Parameter("cuisine", "string", "only this cuisine", required=False, choices=CUISINES),
            Parameter("max_km", "number", "search radius in km (default 3)", required=False, minimum=0.1, maximum=50))),
        Tool("get_restaurant_details", "Service hours and location of a restaurant.", (
            Parameter("name", "string", "restaurant name"),)),
        Tool("search_location", "Coordinates (km) of a place in the destination.", (Parameter("name", "string", _PLACE),)),
        Tool("get_route", "Local route between two places: distance, walk or taxi, minutes, cost for the party.", (
            Parameter("origin", "string", _PLACE), Parameter("destination", "string", _PLACE))),
        Tool("submit_plan", "Submit the final itinerary; this ends the episode and it is scored.", (
            Parameter("plan", "object", "the plan: " + PLAN_SCHEMA_TEXT),)),
    )
}


def _km(value: int) -> float:
    return value / 10


class TravelTools:
    """The handlers of `TRAVEL_TOOLS` over one world; replies are (text, JSON-ready result).

    Args:
        world: the task's database.
        trip: the trip (for the destination and the party size).
    """

    def __init__(self, world: TravelWorld, trip: Trip):
        self.world, self.trip = world, trip

    def run(self, name: str, arguments: dict) -> tuple[str, object]:
        """Run tool `name` (not `submit_plan`) with validated `arguments`.

        Raises:
            ToolError: readable message for unknown tools, bad arguments or unknown names.
        """
        if name not in TRAVEL_TOOLS or name == "submit_plan":
            raise ToolError(f"unknown tool {printable(name, 40)!r}")
        return getattr(self, "_tool_" + name)(**validate_arguments(TRAVEL_TOOLS[name], arguments))

    def _check_date(self, date: str) -> None:
        if not _DATE.fullmatch(date):
            raise ToolError(f"date must look like 2026-03-02, got {printable(date, 30)!r}")

    def _lookup(self, name: str, kind: type, label: str):
        entity = self.world.entity(name)
        if isinstance(entity, kind):
            return entity
        pool = [e.name for e in getattr(self.world, label + "s")]
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else f" recommend_{label}s lists them."
        raise ToolError(f"no {label} called {printable(name, 60)!r}.{hint}")

    def _place(self, name: str) -> tuple[int, int]:
        spot = self.world.place(name)
        if spot is None:
            close = difflib.get_close_matches(name, self.world.place_names(), n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ToolError(f"unknown place {printable(name, 60)!r} in {self.trip.destination}.{hint}")
        return spot

    def _transports(self, mode, origin, destination, date, seat_class=None):
        self._check_date(date)
        rows = [
            t for t in self.world.transports
            if t.mode == mode and t.origin == origin and t.destination == destination and t.date == date
            and seat_class in (None, t.seat_class)
        ]
        if not rows:
            return f"No {mode}s from {printable(origin, 40)} to {printable(destination, 40)} on {printable(date, 12)}.", []
        lines, result = [], []
        for t in rows:
            stops = "direct" if t.stops == 0 else f"{t.stops} stop"
            lines.append(f"{t.number} | {clock(t.depart)} -> {clock(t.arrive)} | {stops} | {t.seat_class} | {t.price} per person")
            result.append({"number": t.number, "mode": mode, "origin": origin, "destination": destination, "date": date,
                           "depart": clock(t.depart), "arrive": clock(t.arrive), "stops": t.stops,
                           "seat_class": t.seat_class, "price": t.price})
        return "\n".join(lines), result

    def _tool_search_flights(self, origin, destination, date, seat_class=None):
        return self._transports("flight", origin, destination, date, seat_class)

    def _tool_search_trains(self, origin, destination, date, seat_class=None):
        return self._transports("train", origin, destination, date, seat_class)

    def _tool_get_transport_details(self, number, date):
        self._check_date(date)
        t = self.world.transport(number, date)
        if t is None:
            raise ToolError(f"no train or flight {printable(number, 20)!r} on {date}; search_flights or search_trains lists them")
        result = {"number": t.number, "mode": t.mode, "origin": t.origin, "destination": t.destination, "date": t.date,
                  "depart": clock(t.depart), "arrive": clock(t.arrive), "stops": t.stops, "seat_class": t.seat_class,
                  "price": t.price, "seats_left": t.seats,
                  "station": station_name(t.destination, t.mode) if t.destination == self.trip.destination
                  else station_name(t.origin, t.mode)}
        text = (f"{t.number} ({t.mode}) {t.origin} -> {t.destination} on {t.date}, {clock(t.depart)} -> {clock(t.arrive)}, "
                f"{'direct' if t.stops == 0 else str(t.stops) + ' stop'}, {t.seat_class}, {t.price} per person, "
                f"{t.seats} seats left; in {self.trip.destination} it uses {result['station']}")
        return text, result

    def _city_records(self, city: str, records):
        return list(records) if city == self.world.destination else []

    def _tool_search_hotels(self, city, stars=None, brand=None):
        rows = [h for h in self._city_records(city, self.world.hotels)
                if stars in (None, h.stars) and brand in (None, h.brand)]
        if not rows:
            return f"No hotels match in {printable(city, 40)}.", []
        result = [{"name": h.name, "brand": h.brand, "stars": h.stars, "price": h.price, "rating": h.rating,
                   "x": _km(h.x), "y": _km(h.y)} for h in rows]
        lines = [f"{h.name} | {h.brand} | {h.stars} stars | rating {h.rating} | {h.price} per room-night | "
                 f"at ({_km(h.x)}, {_km(h.y)})" for h in rows]
        return "\n".join(lines), result

    def _tool_recommend_attractions(self, city, attraction_type=None):
        rows = [a for a in self._city_records(city, self.world.attractions) if attraction_type in (None, a.type)]
        if not rows:
            return f"No attractions match in {printable(city, 40)}.", []
        result = [{"name": a.name, "type": a.type, "rating": a.rating, "price": a.price, "x": _km(a.x), "y": _km(a.y)} for a in rows]
        lines = [f"{a.name} | {a.type} | rating {a.rating} | {'free' if a.price == 0 else str(a.price) + ' per person'} | "
                 f"at ({_km(a.x)}, {_km(a.y)})" for a in rows]
        return "\n".join(lines), result

    def _tool_get_attraction_details(self, name):
        a = self._lookup(name, Attraction, "attraction")
        closed = f"closed on {WEEKDAYS[a.closed_weekday]}s" if a.closed_weekday >= 0 else "open every day"
        result = {"name": a.name, "type": a.type, "rating": a.rating, "price": a.price, "open": clock(a.open),
                  "close": clock(a.close), "closed_weekday": WEEKDAYS[a.closed_weekday] if a.closed_weekday >= 0 else None,
                  "min_visit": a.min_visit, "max_visit": a.max_visit, "x": _km(a.x), "y": _km(a.y)}
        text = (f"{a.name} ({a.type}): open {clock(a.open)}-{clock(a.close)}, {closed}; visit {a.min_visit}-{a.max_visit} "
                f"minutes; {'free' if a.price == 0 else str(a.price) + ' per person'}; rating {a.rating}; at ({_km(a.x)}, {_km(a.y)})")
        return text, result

    def _tool_recommend_restaurants(self, near, cuisine=None, max_km=3.0):
        spot = self._place(near)
        rows = []
        for r in self.world.restaurants:
            distance = route_between(spot, (r.x, r.y), 1).distance
            if distance <= max_km and cuisine in (None, r.cuisine):
                rows.append((distance, r.name, r))
        rows.sort()
        if not rows:
            return f"No restaurants within {max_km:g} km of {near}.", []
        result = [{"name": r.name, "cuisine": r.cuisine, "price": r.price, "rating": r.rating, "distance_km": d,
                   "x": _km(r.x), "y": _km(r.y)} for d, _, r in rows]
        lines = [f"{r.name} | {r.cuisine} | {r.price} per person | rating {r.rating} | {d} km away" for d, _, r in rows]
        return "\n".join(lines), result

    def _tool_get_restaurant_details(self, name):
        r = self._lookup(name, Restaurant, "restaurant")
        result = {"name": r.name, "cuisine": r.cuisine, "price": r.price, "rating": r.rating, "open": clock(r.open),
                  "close": clock(r.close), "x": _km(r.x), "y": _km(r.y)}
        text = (f"{r.name} ({r.cuisine}): open {clock(r.open)}-{clock(r.close)}; {r.price} per person; rating {r.rating}; "
                f"at ({_km(r.x)}, {_km(r.y)})")
        return text, result

    def _tool_search_location(self, name):
        x, y = self._place(name)
        return f"{name} is at ({_km(x)}, {_km(y)})", {"name": name, "x": _km(x), "y": _km(y)}

    def _tool_get_route(self, origin, destination):
        route = route_between(self._place(origin), self._place(destination), self.trip.travellers)
        result = {"origin": origin, "destination": destination, "distance_km": route.distance, "mode": route.mode,
                  "minutes": route.minutes, "cost": route.cost}
        text = (f"{origin} -> {destination}: {route.distance} km, {route.mode}, {route.minutes} minutes, "
                f"cost {route.cost} for the party")
        return text, result

    def database_text(self) -> str:
        """The whole database as text (the database-in-prompt mode's first observation)."""
        world, trip = self.world, self.trip
        lines = ["Database (every record; coordinates in km):", "Transport (number, mode, from, to, date, times, stops, class, price per person, seats left):"]
        for t in world.transports:
            lines.append(f"{t.number} {t.mode} {t.origin}->{t.destination} {t.date} {clock(t.depart)}-{clock(t.arrive)} "
                         f"stops {t.stops} {t.seat_class} {t.price} seats {t.seats}")
        lines.append(f"Stations: {station_name(trip.destination, 'train')} at ({_km(world.station[0])}, {_km(world.station[1])}); "
                     f"{station_name(trip.destination, 'flight')} at ({_km(world.airport[0])}, {_km(world.airport[1])})")
        lines.append("Hotels (name, brand, stars, rating, price per room-night, x, y):")
        lines += [f"{h.name}; {h.brand}; {h.stars}; {h.rating}; {h.price}; {_km(h.x)}, {_km(h.y)}" for h in world.hotels]
        lines.append("Attractions (name, type, rating, price per person, open-close, closed on, visit minutes, x, y):")
        for a in world.attractions:
            closed = WEEKDAYS[a.closed_weekday] if a.closed_weekday >= 0 else "never"
            lines.append(f"{a.name}; {a.type}; {a.rating}; {a.price}; {clock(a.open)}-{clock(a.close)}; {closed}; "
                         f"{a.min_visit}-{a.max_visit}; {_km(a.x)}, {_km(a.y)}")
        lines.append("Restaurants (name, cuisine, rating, price per person, open-close, x, y):")
        lines += [f"{r.name}; {r.cuisine}; {r.rating}; {r.price}; {clock(r.open)}-{clock(r.close)}; {_km(r.x)}, {_km(r.y)}"
                  for r in world.restaurants]
        return "\n".join(lines)
