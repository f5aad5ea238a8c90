"""A day-by-day trip scheduler: builds a complete, checkable plan from chosen transports, hotel and places.

The generator uses it to build each task's witness plan (the proof that the task is feasible), and the
baseline planners use it on what they learned through the tools. It is a small search: per day it tries
the still-pending must-visit attractions (most first), their positions around lunch and dinner, and the
cheapest restaurants, and keeps the first schedule that meets every rule of `travel_checker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product
from typing import Callable, Mapping, Sequence

from envs.planning.travel_world import (
    Attraction,
    Hotel,
    Restaurant,
    Transport,
    Trip,
    clock,
    route_between,
    station_name,
)

__all__ = [
    "DAY_START",
    "NIGHT_DEADLINE",
    "LUNCH_WINDOW",
    "DINNER_WINDOW",
    "MEAL_MINUTES",
    "EVENING_SURCHARGE_FROM",
    "day_needs",
    "Preferences",
    "schedule_trip",
    "plan_total",
]

#: Earliest departure from the hotel on days after the first (the witness's choice, not a rule).
DAY_START = 8 * 60
#: Latest arrival back at the hotel that the witness plans for.
NIGHT_DEADLINE = 23 * 60 + 30
#: A meal is lunch or dinner when it starts inside these windows (minutes after midnight).
LUNCH_WINDOW = (11 * 60, 13 * 60 + 30)
DINNER_WINDOW = (17 * 60, 20 * 60)
#: Allowed meal lengths; the witness takes 60 minutes, or 45 when time is short.
MEAL_MINUTES = (45, 120)
#: Taxis leaving at or after this time pay the hidden evening surcharge (the MetaQuirk variant).
EVENING_SURCHARGE_FROM = 18 * 60
_SIMULATIONS_PER_DAY = 600


def day_needs(arrive: int | None, depart: int | None) -> tuple[bool, bool, bool]:
    """Which of (lunch, dinner, an attraction) a day must include, from the time spent in the city.

    Args:
        arrive: arrival time on the first day (None on later days: in town from midnight).
        depart: departure time on the last day (None on earlier days: in town until midnight).

    Returns:
        `(lunch, dinner, attraction)` flags: lunch when in town from 10:30 to 15:30, dinner from 16:00
        to 21:00, an attraction from 11:00 to 18:00.
    """
    start = 0 if arrive is None else arrive
    end = 24 * 60 if depart is None else depart
    return start <= 630 and end >= 930, start <= 960 and end >= 1260, start <= 660 and end >= 1080


@dataclass(frozen=True)
class Preferences:
    """What a planner must respect beyond the rules: must-use entities and known hidden facts.

    Attributes:
        required_attractions: attractions that must all be visited.
        required_restaurant: a restaurant that must host one meal, or "".
        avoid_cuisines: cuisines never to eat.
        closed: extra closures as (attraction type, weekday) pairs.
        surcharge: whether evening taxis pay x1.5 (rounded up).
    """

    required_attractions: tuple[str, ...] = ()
    required_restaurant: str = ""
    avoid_cuisines: tuple[str, ...] = ()
    closed: tuple[tuple[str, int], ...] = ()
    surcharge: bool = False

    def is_closed(self, attraction: Attraction, weekday: int) -> bool:
        return attraction.closed_weekday == weekday or (attraction.type, weekday) in self.closed


class _Day:
    """The search state of one day: where it starts and ends and what it must contain."""

    def __init__(self, index, weekday, start_place, start_time, end_place, deadline, needs):
        self.index, self.weekday = index, weekday
        self.start_place, self.start_time = start_place, start_time
        self.end_place, self.deadline = end_place, deadline
        self.lunch, self.dinner, self.attraction = needs


def _simulate(day: _Day, stops, places, travellers, prefs: Preferences, meal_minutes: int):
    """Time a sequence of (kind, entity) stops; the activity list, or None when a rule breaks."""
    here, now, timed = day.start_place, day.start_time, []
    for kind, entity in stops + [("end", None)]:
        target = day.end_place if kind == "end" else entity.name
        route = route_between(places[here], places[target], travellers, prefs.surcharge and now >= EVENING_SURCHARGE_FROM)
        arrive = now + route.minutes
        if target != here:
            timed.append(("move", here, target, route.mode, now, arrive, route.cost))
        if kind == "end":
            return [_activity(*row) for row in timed] if arrive <= day.deadline else None
        if kind == "attraction":
            begin = max(arrive, entity.open)
            end = begin + entity.min_visit
            if end > entity.close or prefs.is_closed(entity, day.weekday):
                return None
        else:
            low, high = LUNCH_WINDOW if kind == "lunch" else DINNER_WINDOW
            begin = max(arrive, low, entity.open)
            end = begin + meal_minutes
            if begin > high or end > entity.close:
                return None
        timed.append(("meal" if kind in ("lunch", "dinner") else "attraction", entity.name, begin, end, entity.price * travellers))
        here, now = target, end
    return None


def _activity(kind, *fields) -> dict:
    """A timed row from `_simulate` as a plan activity (times formatted only for the winning schedule)."""
    if kind == "move":
        here, target, mode, start, end, cost = fields
        return {"type": "move", "from": here, "to": target, "mode": mode, "start": clock(start), "end": clock(end), "cost": cost}
    name, start, end, cost = fields
    return {"type": kind, "name": name, "start": clock(start), "end": clock(end), "cost": cost}


def _restaurant_options(kind, day, restaurants, used, prefs, pending_restaurant, limit=3):
    low, high = LUNCH_WINDOW if kind == "lunch" else DINNER_WINDOW
    fits = [
        r for r in restaurants
        if r.name not in used and r.cuisine not in prefs.avoid_cuisines and r.open <= high and r.close >= low + 45
    ]
    options = [r for r in fits if r.name == pending_restaurant] + [r for r in fits if r.name != pending_restaurant][:limit]
    return options or [None]


def _sequences(day: _Day, attraction_sets, lunches, dinners):
    """Candidate stop sequences, cheapest and fullest first."""
    for chosen in attraction_sets:
        segments = 1 + int(day.lunch) + int(day.dinner)
        for slots in product(range(segments), repeat=len(chosen)):
            for lunch in lunches if day.lunch else [None]:
                for dinner in dinners if day.dinner else [None]:
                    if lunch is not None and dinner is not None and lunch.name == dinner.name:
                        continue
                    stops, segment = [], 0
                    meals = [("lunch", lunch)] * day.lunch + [("dinner", dinner)] * day.dinner
                    for segment in range(segments):
                        stops += [("attraction", a) for a, slot in zip(chosen, slots, strict=True) if slot == segment]
                        if segment < len(meals):
                            stops.append(meals[segment])
                    yield stops


def _plan_day(day, attractions, restaurants, places, travellers, prefs, pending, used_attractions, used_restaurants):
    open_pending = [a for a in attractions if a.name in pending and not prefs.is_closed(a, day.weekday)]
    attraction_sets = []
    for size in range(len(open_pending), -1, -1):
        for subset in combinations(open_pending, size):
            attraction_sets.append(subset)
    if day.attraction:
        fillers = [
            a for a in attractions
            if a.name not in used_attractions and a.name not in pending and not prefs.is_closed(a, day.weekday)
        ][:3]
        attraction_sets = [s for s in attraction_sets if s] + [(f,) for f in fillers]
    pending_restaurant = prefs.required_restaurant if prefs.required_restaurant not in used_restaurants else ""
    lunches = _restaurant_options("lunch", day, restaurants, used_restaurants, prefs, pending_restaurant)
    dinners = _restaurant_options("dinner", day, restaurants, used_restaurants, prefs, pending_restaurant)
    tried = 0
    for meal_minutes in (60, MEAL_MINUTES[0]):
        for stops in _sequences(day, attraction_sets, lunches, dinners):
            if any(entity is None for _, entity in stops):
                continue
            tried += 1
            if tried > _SIMULATIONS_PER_DAY:
                return None
            activities = _simulate(day, stops, places, travellers, prefs, meal_minutes)
            if activities is not None:
                return activities
    return None


def plan_total(plan: dict) -> int:
    """The sum of every stated cost in a plan dict (activities and accommodation)."""
    total = 0
    for day in plan["days"]:
        total += sum(activity["cost"] for activity in day["activities"])
        if day.get("accommodation"):
            total += day["accommodation"]["cost"]
    return total


def schedule_trip(
    trip: Trip,
    outbound: Transport,
    inbound: Transport,
    hotel: Hotel,
    attractions: Sequence[Attraction],
    restaurants: Sequence[Restaurant],
    places: Mapping[str, tuple[int, int]],
    prefs: Preferences = Preferences(),
) -> dict | None:
    """Build a plan dict (the `submit_plan` schema) or None when this search finds no schedule.

    Args:
        trip: the trip's dates and party.
        outbound: the transport taken on the first day.
        inbound: the transport taken home on the last day.
        hotel: the hotel for every night.
        attractions: candidate attractions, in order of preference (e.g. cheapest first).
        restaurants: candidate restaurants, in order of preference.
        places: coordinates of every named place used (stations, hotel, attractions, restaurants).
        prefs: must-visit entities and known hidden facts.

    Returns:
        The plan, with costs for the whole party and `total_cost`, or None.
    """
    arrival = station_name(trip.destination, outbound.mode)
    departure = station_name(trip.destination, inbound.mode)
    needs = [
        day_needs(outbound.arrive if d == 0 else None, inbound.depart if d == trip.days - 1 else None)
        for d in range(trip.days)
    ]
    if not any(flags[2] for flags in needs) and not prefs.required_attractions:
        # The trip must hold one attraction somewhere: give it to the day with the most time in town.
        spans = [
            (inbound.depart if d == trip.days - 1 else 1440) - (outbound.arrive if d == 0 else DAY_START)
            for d in range(trip.days)
        ]
        longest = spans.index(max(spans))
        needs[longest] = (needs[longest][0], needs[longest][1], True)
    pending = set(prefs.required_attractions)
    used_attractions: set[str] = set()
    used_restaurants: set[str] = set()
    days = []
    for index in range(trip.days):
        last = index == trip.days - 1
        day = _Day(
            index, trip.weekdays[index],
            arrival if index == 0 else hotel.name,
            outbound.arrive if index == 0 else min(DAY_START, inbound.depart - 60) if last else DAY_START,
            departure if last else hotel.name, inbound.depart if last else NIGHT_DEADLINE, needs[index],
        )
        activities = _plan_day(
            day, attractions, restaurants, places, trip.travellers, prefs, pending, used_attractions, used_restaurants
        )
        if activities is None:
            return None
        for activity in activities:
            if activity["type"] == "attraction":
                used_attractions.add(activity["name"])
                pending.discard(activity["name"])
            elif activity["type"] == "meal":
                used_restaurants.add(activity["name"])
        if index == 0:
            activities.insert(0, _intercity(outbound, trip.travellers))
        if last:
            activities.append(_intercity(inbound, trip.travellers))
        accommodation = None if last else {"name": hotel.name, "cost": hotel.price * trip.rooms}
        days.append({"day": index + 1, "activities": activities, "accommodation": accommodation})
    if pending or (prefs.required_restaurant and prefs.required_restaurant not in used_restaurants):
        return None
    plan = {"days": days, "total_cost": 0}
    plan["total_cost"] = plan_total(plan)
    return plan


def _intercity(transport: Transport, travellers: int) -> dict:
    return {
        "type": "intercity", "number": transport.number, "from": transport.origin, "to": transport.destination,
        "start": clock(transport.depart), "end": clock(transport.arrive), "cost": transport.price * travellers,
    }


def choose_cheapest(options: Sequence, key: Callable) -> list:
    """Options sorted by `key` then name, so ties break the same way everywhere."""
    return sorted(options, key=lambda item: (key(item), getattr(item, "name", getattr(item, "number", ""))))
