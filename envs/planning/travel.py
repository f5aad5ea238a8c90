"""`TravelPlanning`: DeepPlanning-style multi-day trip planning with tools, on procedurally generated worlds."""

from __future__ import annotations

import difflib
import json
import re

import numpy as np

from envs.core import TextEnv, Turn, printable
from envs.planning.tools import Parameter, Tool, ToolError, openai_schemas, parse_tool_call
from envs.planning.travel_checker import DIMENSIONS, PLAN_SCHEMA_TEXT, check_plan, read_plan
from envs.planning.travel_schedule import DINNER_WINDOW, LUNCH_WINDOW, MEAL_MINUTES
from envs.planning.travel_tasks import HIDDEN_KINDS, TravelTask, generate_task
from envs.planning.travel_world import (
    ATTRACTION_TYPES,
    Attraction,
    CUISINES,
    ROUTE_RULE,
    Restaurant,
    TRAVEL_TIERS,
    WEEKDAYS,
    clock,
    route_between,
    station_name,
)

__all__ = ["TravelPlanning", "TRAVEL_TOOLS"]

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
        Tool("get_route", "Local route between two places: distance, walk or taxi, minutes, cost for the party.", (
            Parameter("origin", "string", _PLACE), Parameter("destination", "string", _PLACE))),
        Tool("submit_plan", "Submit the final itinerary; this ends the episode and it is scored.", (
            Parameter("plan", "object", "the plan: " + PLAN_SCHEMA_TEXT),)),
    )
}


def _km(value: int) -> float:
    return value / 10


class TravelPlanning(TextEnv):
    """Plan a multi-day trip with tool calls; an exact checker scores the submitted JSON plan.

    Description:
        DeepPlanning's travel domain (arXiv 2601.18137) on generated worlds: a destination with
        attractions, restaurants and hotels, trains and flights for the trip's dates, and local walks
        and taxis. The request states the trip and k hard constraints whose answers are unique; a
        witness plan proves each task feasible and sets the budget. Hidden facts (opening hours,
        closing days, seats left) appear only through the detail tools.
    Action Space:
        Text: one JSON tool call in `\\boxed{}`: `{"name": <tool>, "arguments": {...}}` (see `TRAVEL_TOOLS`;
        reset info `tools` holds the OpenAI schemas). With `database_in_prompt=True` the first
        observation lists the whole database and the only tool is `submit_plan`.
    Observation Space:
        Text: the rules and the request, then each tool's reply; after `submit_plan` the checker's
        per-dimension feedback.
    Starting State:
        A task drawn from `np_random` (`envs.planning.travel_tasks.generate_task`).
    Rewards:
        1.0 when the submitted plan passes every commonsense dimension and hard constraint
        (`case_acc`), else 0; with `shaped_reward=True` the submit pays `partial_score` instead.
        Format errors cost `format_penalty`.
    Episode End:
        On `submit_plan` with a schema-valid plan, after `max_turns` calls, or after more than
        `max_invalid` format errors, failed tool calls and schema-invalid plans.
    Information:
        Reset: instructions, task, episode_step, tools, query. Every step: parsed_action, format_error,
        invalid_action, episode_step, tool (the tool called or None), tool_result (the reply as
        JSON-ready data, or None), tool_error (the error text, or None). At the episode's end: success,
        episode_return, oracle_return, delivered (a plan was scored), composite, commonsense,
        personalized, case_acc, constraint_fraction, partial_score, dimensions (name -> passed),
        constraints (name -> met), feedback (the checker's text), revealed (hidden facts disclosed by
        the feedback, meta variants).
    Arguments:
        difficulty: "easy", "medium" or "hard" (`TRAVEL_TIERS`).
        hidden: None, or "preference", "quirk" or "budget" for the multi-episode meta variants.
        database_in_prompt: list the database in the first observation; only `submit_plan` is offered.
        shaped_reward: pay `partial_score` on submit instead of the 0/1 case accuracy.
        max_turns, max_invalid, format_penalty and the other `TextEnv` arguments.
    Version History:
        v0: initial version.
    """

    default_max_turns = 60

    def __init__(
        self,
        difficulty: str = "medium",
        hidden: str | None = None,
        database_in_prompt: bool = False,
        shaped_reward: bool = False,
        max_invalid: int = 8,
        max_action_chars: int = 16384,
        **kwargs,
    ):
        if difficulty not in TRAVEL_TIERS:
            raise ValueError(f"difficulty={difficulty!r}; allowed: {sorted(TRAVEL_TIERS)}")
        if hidden is not None and hidden not in HIDDEN_KINDS:
            raise ValueError(f"hidden={hidden!r}; allowed: None or {sorted(HIDDEN_KINDS)}")
        kwargs.setdefault("max_turns", 3 if database_in_prompt else TRAVEL_TIERS[difficulty].max_turns)
        super().__init__(max_invalid=max_invalid, max_action_chars=max_action_chars, **kwargs)
        self.difficulty, self.hidden = difficulty, hidden
        self.database_in_prompt, self.shaped_reward = bool(database_in_prompt), bool(shaped_reward)
        names = ("submit_plan",) if self.database_in_prompt else tuple(TRAVEL_TOOLS)
        self.tools = {name: TRAVEL_TOOLS[name] for name in names}
        self._verdict: dict | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        observation, info = super().reset(seed=seed, options=options)
        trip = self.task.trip
        info["tools"] = openai_schemas(self.tools)
        # The request in structured form (the same facts as its text; never the answers).
        info["query"] = {
            "origin": trip.origin, "destination": trip.destination, "dates": list(trip.dates),
            "weekdays": [WEEKDAYS[w] for w in trip.weekdays], "travellers": trip.travellers, "rooms": trip.rooms,
            "budget": self.task.budget, "constraints": [c.public() for c in self.task.constraints],
        }
        return observation, info

    # ----------------------------------------------------------------- TextEnv hooks
    def sample_task(self, rng: np.random.Generator) -> TravelTask:
        return generate_task(rng, self.difficulty, self.hidden)

    @property
    def instructions(self) -> str:
        tools = "; ".join(tool.signature() for tool in self.tools.values())
        return "\n".join([
            "You are a travel agent. Plan the trip below so that it follows every rule and requirement.",
            'Act with one tool call per turn, as JSON inside \\boxed{}: \\boxed{{"name": "<tool>", "arguments": {...}}}.',
            f"Tools: {tools}.",
            "Rules: the plan starts with the outbound train or flight on day 1 and ends with the return one on "
            "the last day; every night ends at the accommodation, where the next day starts; every change of "
            "place is a move with its own time and cost; activities do not overlap; visits respect opening "
            "hours and closing days; an attraction visit lasts its stated visit length; a meal lasts "
            f"{MEAL_MINUTES[0]}-{MEAL_MINUTES[1]} minutes. Lunch (a meal starting {clock(LUNCH_WINDOW[0])}-"
            f"{clock(LUNCH_WINDOW[1])}) is needed on days in town from 10:30 to 15:30, dinner (starting "
            f"{clock(DINNER_WINDOW[0])}-{clock(DINNER_WINDOW[1])}) on days in town from 16:00 to 21:00, an "
            "attraction on days in town from 11:00 to 18:00, and at least one attraction per trip. No place "
            "is visited twice. Costs are for the whole party: tickets, meals and transport x travellers, "
            "hotels x rooms per night; total_cost is their sum. Book only trains and flights with enough seats.",
            f"Local routes: {ROUTE_RULE}",
            "Submit with submit_plan: " + PLAN_SCHEMA_TEXT,
        ])

    def _start(self) -> str:
        self._verdict = None
        self._last_feedback = ""
        text = "Request:\n" + self.task.query
        if self.database_in_prompt:
            text += "\n\n" + self._database_text()
        return text

    def _on_format_error(self) -> Turn:
        return Turn(self._format_error_text(), info=self._tool_info(None, None, "format error"))

    def _play(self, action: str) -> Turn:
        try:
            name, arguments = parse_tool_call(action, self.tools)
        except ToolError as error:
            message = str(error)
            return Turn(f"Tool error: {message}", invalid=True, info=self._tool_info(None, None, message))
        if name == "submit_plan":
            return self._submit(arguments["plan"])
        try:
            text, result = getattr(self, "_tool_" + name)(**arguments)
        except ToolError as error:
            message = str(error)
            return Turn(f"[{name}] error: {message}", invalid=True, info=self._tool_info(name, None, message))
        return Turn(f"[{name}]\n{text}", info=self._tool_info(name, result, None))

    def oracle_return(self) -> float:
        # The witness plan passes every check, so a policy that knows the task scores 1 (also when shaped).
        return 1.0

    def _episode_metrics(self) -> dict:
        verdict = self._verdict or {
            "delivered": False, "commonsense": 0.0, "personalized": 0.0, "composite": 0.0, "case_acc": 0.0,
            "constraint_fraction": 0.0, "partial_score": 0.0, "dimensions": {name: False for name in DIMENSIONS},
            "constraints": {}, "feedback": "No plan was submitted.", "revealed": {},
        }
        return json.loads(json.dumps(verdict))

    def _render_state(self) -> str:
        return f"turn {self._episode_step}/{self.max_turns}\n{self._last_observation}"

    # ----------------------------------------------------------------- submission
    @staticmethod
    def _tool_info(tool, result, error) -> dict:
        return {"tool": tool, "tool_result": result, "tool_error": error}

    def _submit(self, raw) -> Turn:
        plan, errors = read_plan(raw)
        if plan is None:
            message = "the plan does not match the schema: " + "; ".join(errors)
            text = f"[submit_plan] rejected, fix and resubmit: {'; '.join(errors)}\nSchema: {PLAN_SCHEMA_TEXT}"
            return Turn(text, invalid=True, info=self._tool_info("submit_plan", None, message))
        verdict = check_plan(self.task, plan)
        scores = verdict.scores()
        lines = ["[submit_plan] Plan scored."]
        for name in DIMENSIONS:
            passed = verdict.dimensions[name]
            lines.append(f"{name}: {'pass' if passed else 'FAIL - ' + '; '.join(verdict.messages[name][:2])}")
        for name, met in verdict.constraints.items():
            lines.append(f"constraint {name}: {'met' if met else 'NOT met - ' + '; '.join(verdict.messages[name][:2])}")
        lines.append(
            f"commonsense {scores['commonsense']:.3f}, personalized {scores['personalized']:.0f}, "
            f"composite {scores['composite']:.3f}, constraints met {scores['constraint_fraction']:.2f}"
        )
        feedback = "\n".join(printable(line, 600) for line in lines)
        self._verdict = {
            "delivered": True, **scores, "dimensions": dict(verdict.dimensions),
            "constraints": dict(verdict.constraints), "feedback": feedback, "revealed": verdict.revealed,
        }
        success = scores["case_acc"] == 1.0
        reward = scores["partial_score"] if self.shaped_reward else float(success)
        return Turn(feedback, reward=reward, done=True, success=success,
                    info=self._tool_info("submit_plan", {"scores": scores}, None))

    # ----------------------------------------------------------------- tools
    def _check_date(self, date: str) -> None:
        if not _DATE.fullmatch(date):
            raise ToolError(f"date must look like 2026-03-02, got {printable(date, 30)!r}")

    def _lookup(self, name: str, kind: type, label: str):
        entity = self.task.world.entity(name)
        if isinstance(entity, kind):
            return entity
        pool = [e.name for e in getattr(self.task.world, label + "s")]
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else f" recommend_{label}s lists them."
        raise ToolError(f"no {label} called {printable(name, 60)!r}.{hint}")

    def _place(self, name: str) -> tuple[int, int]:
        spot = self.task.world.place(name)
        if spot is None:
            close = difflib.get_close_matches(name, self.task.world.place_names(), n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ToolError(f"unknown place {printable(name, 60)!r} in {self.task.trip.destination}.{hint}")
        return spot

    def _transports(self, mode, origin, destination, date, seat_class=None):
        self._check_date(date)
        rows = [
            t for t in self.task.world.transports
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
        t = self.task.world.transport(number, date)
        if t is None:
            raise ToolError(f"no train or flight {printable(number, 20)!r} on {date}; search_flights or search_trains lists them")
        result = {"number": t.number, "mode": t.mode, "origin": t.origin, "destination": t.destination, "date": t.date,
                  "depart": clock(t.depart), "arrive": clock(t.arrive), "stops": t.stops, "seat_class": t.seat_class,
                  "price": t.price, "seats_left": t.seats,
                  "station": station_name(t.destination, t.mode) if t.destination == self.task.trip.destination
                  else station_name(t.origin, t.mode)}
        text = (f"{t.number} ({t.mode}) {t.origin} -> {t.destination} on {t.date}, {clock(t.depart)} -> {clock(t.arrive)}, "
                f"{'direct' if t.stops == 0 else str(t.stops) + ' stop'}, {t.seat_class}, {t.price} per person, "
                f"{t.seats} seats left; in {self.task.trip.destination} it uses {result['station']}")
        return text, result

    def _city_records(self, city: str, records):
        return list(records) if city == self.task.world.destination else []

    def _tool_search_hotels(self, city, stars=None, brand=None):
        rows = [h for h in self._city_records(city, self.task.world.hotels)
                if stars in (None, h.stars) and brand in (None, h.brand)]
        if not rows:
            return f"No hotels match in {printable(city, 40)}.", []
        result = [{"name": h.name, "brand": h.brand, "stars": h.stars, "price": h.price, "rating": h.rating,
                   "x": _km(h.x), "y": _km(h.y)} for h in rows]
        lines = [f"{h.name} | {h.brand} | {h.stars} stars | rating {h.rating} | {h.price} per room-night | "
                 f"at ({_km(h.x)}, {_km(h.y)})" for h in rows]
        return "\n".join(lines), result

    def _tool_recommend_attractions(self, city, attraction_type=None):
        rows = [a for a in self._city_records(city, self.task.world.attractions) if attraction_type in (None, a.type)]
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
        for r in self.task.world.restaurants:
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

    def _tool_get_route(self, origin, destination):
        route = route_between(self._place(origin), self._place(destination), self.task.trip.travellers)
        result = {"origin": origin, "destination": destination, "distance_km": route.distance, "mode": route.mode,
                  "minutes": route.minutes, "cost": route.cost}
        text = (f"{origin} -> {destination}: {route.distance} km, {route.mode}, {route.minutes} minutes, "
                f"cost {route.cost} for the party")
        return text, result

    # ----------------------------------------------------------------- database-in-prompt
    def _database_text(self) -> str:
        world, trip = self.task.world, self.task.trip
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
