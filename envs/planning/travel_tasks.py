"""Travel tasks: hard-constraint templates with unique answers, hidden meta parameters and the witness plan.

`generate_task(rng, difficulty, hidden_kind)` draws a world, k constraint templates (each answer is
computed here and tied instances are rejected), an optional hidden parameter, and a witness plan from
`travel_schedule`; the budget is the witness cost x (1 + slack). Tasks whose witness search fails are
redrawn, so every emitted task is feasible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from envs.planning.travel_schedule import EVENING_SURCHARGE_FROM, Preferences, choose_cheapest, schedule_trip
from envs.planning.travel_world import (
    TRAVEL_TIERS,
    WEEKDAYS,
    TravelWorld,
    Trip,
    clock,
    generate_world,
    parse_clock,
    route_between,
    station_name,
)

__all__ = [
    "Constraint",
    "Hidden",
    "TravelTask",
    "CONSTRAINT_KINDS",
    "HIDDEN_KINDS",
    "generate_task",
    "witness_plan",
    "constraint_candidates",
    "NEAR_DECIKM",
]

#: Template kinds, grouped by the plan slot they pin (at most one hotel template per task).
CONSTRAINT_KINDS = (
    "cheapest_direct_flight",
    "return_train_window",
    "hotel_top_rated_star",
    "hotel_cheapest_brand",
    "restaurant_cuisine_near",
    "free_attractions_of_type",
    "top_rated_of_type",
)
_HOTEL_KINDS = ("hotel_top_rated_star", "hotel_cheapest_brand")
#: Hidden-parameter families of the meta variants and the concrete kinds each draws from.
HIDDEN_KINDS = {
    "preference": ("avoid_cuisine", "min_hotel_stars"),
    "quirk": ("evening_surcharge", "chain_closure"),
    "budget": ("true_budget",),
}
#: "Near" means within 2.0 km (20 tenths of a km), measured like routes.
NEAR_DECIKM = 20
_MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class Constraint:
    """A hard constraint: its template kind, the request text, parameters and the unique answer."""

    kind: str
    text: str
    answer: tuple[str, ...]
    params: tuple[tuple[str, object], ...] = ()

    def public(self) -> dict:
        """The constraint as an agent may see it (no answer)."""
        return {"kind": self.kind, "text": self.text, "params": dict(self.params)}


@dataclass(frozen=True)
class Hidden:
    """A hidden parameter of a meta variant: its kind, value, and the sentence that reveals it."""

    kind: str
    value: tuple
    reveal: str


@dataclass(frozen=True)
class TravelTask:
    """One travel task: the sandbox world, the trip, constraints, stated budget, hidden parameter, witness."""

    world: TravelWorld
    trip: Trip
    constraints: tuple[Constraint, ...]
    budget: int
    hidden: Hidden | None
    witness: str
    query: str
    difficulty: str

    def preferences(self) -> Preferences:
        """The preferences a fully informed planner schedules with (constraints plus the hidden fact)."""
        return _preferences(self.constraints, self.hidden)

    def true_budget(self) -> int:
        """The budget the checker applies (a hidden true budget may be lower than the stated one)."""
        if self.hidden is not None and self.hidden.kind == "true_budget":
            return int(self.hidden.value[0])
        return self.budget


# ----------------------------------------------------------------------------- constraint templates
def _decikm(a, b) -> int:
    return int(round(route_between((a.x, a.y), (b.x, b.y), 1).distance * 10))


def constraint_candidates(world: TravelWorld, trip: Trip, kind: str, params: dict) -> list[tuple[object, str]]:
    """The entities a template ranks, as (score, name) with the best score first; ties share a score.

    Tests use this to confirm that every emitted answer is the unique best.
    """
    n = trip.travellers
    if kind == "cheapest_direct_flight":
        pool = [t for t in world.transports if t.mode == "flight" and t.stops == 0 and t.date == trip.dates[0]
                and t.origin == trip.origin and t.seats >= n]
        return sorted((t.price, t.number) for t in pool)
    if kind == "return_train_window":
        low, high = parse_clock(params["earliest"]), parse_clock(params["latest"])
        pool = [t for t in world.transports if t.mode == "train" and t.date == trip.dates[-1]
                and t.origin == trip.destination and low <= t.depart <= high]
        return [(0, t.number) for t in pool]
    if kind == "hotel_top_rated_star":
        return sorted((-h.rating, h.name) for h in world.hotels if h.stars == params["stars"])
    if kind == "hotel_cheapest_brand":
        return sorted((h.price, h.name) for h in world.hotels if h.brand == params["brand"])
    if kind == "restaurant_cuisine_near":
        anchor = world.entity(params["attraction"])
        return sorted((-r.rating, r.name) for r in world.restaurants
                      if r.cuisine == params["cuisine"] and _decikm(r, anchor) <= NEAR_DECIKM)
    if kind == "free_attractions_of_type":
        return [(0, a.name) for a in world.attractions if a.type == params["type"] and a.price == 0]
    if kind == "top_rated_of_type":
        return sorted((-a.rating, a.name) for a in world.attractions if a.type == params["type"])
    raise ValueError(f"unknown constraint kind {kind!r}; allowed: {CONSTRAINT_KINDS}")


def _unique_best(ranked) -> tuple[str, ...] | None:
    if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
        return None
    return (ranked[0][1],)


def _draw_constraint(rng, world: TravelWorld, trip: Trip, kind: str) -> Constraint | None:
    """One instance of template `kind`, or None when this world has no untied instance of it."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    if kind == "cheapest_direct_flight":
        answer = _unique_best(constraint_candidates(world, trip, kind, {}))
        text = (f"Fly out on {trip.dates[0]} on the cheapest direct flight from {trip.origin} to {trip.destination} "
                f"that still has seats for all {trip.travellers} of us.")
        return answer and Constraint(kind, text, answer)
    if kind == "return_train_window":
        trains = sorted((t for t in world.transports if t.mode == "train" and t.date == trip.dates[-1]
                         and t.origin == trip.destination), key=lambda t: t.depart)
        targets = [t for t in trains if t.seats >= trip.travellers and t.depart >= 12 * 60]
        if not targets:
            return None
        target = pick(targets)
        before = max([t.depart for t in trains if t.depart < target.depart], default=-1)
        after = min([t.depart for t in trains if t.depart > target.depart], default=24 * 60)
        if any(t.depart == target.depart and t.number != target.number for t in trains):
            return None
        # Both ends stay strictly between the neighbouring departures, so the target is the only train inside.
        low = max(before + 1, target.depart - 5 * int(rng.integers(2, 13)))
        high = min(after - 1, target.depart + 5 * int(rng.integers(2, 13)), 23 * 60 + 59)
        params = (("earliest", clock(low)), ("latest", clock(high)))
        text = f"Come back by train on {trip.dates[-1]}, leaving {trip.destination} between {clock(low)} and {clock(high)}."
        return Constraint(kind, text, (target.number,), params)
    if kind == "hotel_top_rated_star":
        stars = pick(sorted({h.stars for h in world.hotels}))
        answer = _unique_best(constraint_candidates(world, trip, kind, {"stars": stars}))
        return answer and Constraint(kind, f"Stay every night at the highest-rated {stars}-star hotel.", answer, (("stars", stars),))
    if kind == "hotel_cheapest_brand":
        brand = pick(sorted({h.brand for h in world.hotels}))
        answer = _unique_best(constraint_candidates(world, trip, kind, {"brand": brand}))
        return answer and Constraint(kind, f"Stay every night at the cheapest {brand} hotel.", answer, (("brand", brand),))
    if kind == "restaurant_cuisine_near":
        for _ in range(8):
            anchor = pick(world.attractions)
            near = [r for r in world.restaurants if _decikm(r, anchor) <= NEAR_DECIKM]
            if not near:
                continue
            cuisine = pick(near).cuisine
            params = {"cuisine": cuisine, "attraction": anchor.name}
            answer = _unique_best(constraint_candidates(world, trip, kind, params))
            if answer:
                text = f"Have one meal at the best-rated {cuisine} restaurant within 2 km of {anchor.name}."
                return Constraint(kind, text, answer, tuple(params.items()))
        return None
    if kind == "free_attractions_of_type":
        types = sorted({a.type for a in world.attractions if a.price == 0})
        if not types:
            return None
        kind_of = pick(types)
        answer = tuple(sorted(name for _, name in constraint_candidates(world, trip, kind, {"type": kind_of})))
        if len(answer) > 3:
            return None
        return Constraint(kind, f"Visit every free {kind_of} attraction.", answer, (("type", kind_of),))
    if kind == "top_rated_of_type":
        kind_of = pick(sorted({a.type for a in world.attractions}))
        answer = _unique_best(constraint_candidates(world, trip, kind, {"type": kind_of}))
        return answer and Constraint(kind, f"Visit the highest-rated {kind_of} attraction.", answer, (("type", kind_of),))
    raise ValueError(f"unknown constraint kind {kind!r}; allowed: {CONSTRAINT_KINDS}")


def _draw_constraints(rng, world, trip, count: int) -> tuple[Constraint, ...] | None:
    chosen: list[Constraint] = []
    for index in rng.permutation(len(CONSTRAINT_KINDS)):
        kind = CONSTRAINT_KINDS[int(index)]
        if len(chosen) == count:
            break
        if kind in _HOTEL_KINDS and any(c.kind in _HOTEL_KINDS for c in chosen):
            continue
        constraint = _draw_constraint(rng, world, trip, kind)
        if constraint is not None:
            chosen.append(constraint)
    return tuple(chosen) if len(chosen) == count else None


# ----------------------------------------------------------------------------- witness and hidden facts
def _preferences(constraints, hidden: Hidden | None) -> Preferences:
    required = tuple(dict.fromkeys(
        name for c in constraints if c.kind in ("free_attractions_of_type", "top_rated_of_type") for name in c.answer
    ))
    restaurant = next((c.answer[0] for c in constraints if c.kind == "restaurant_cuisine_near"), "")
    kind = hidden.kind if hidden else ""
    return Preferences(
        required_attractions=required,
        required_restaurant=restaurant,
        avoid_cuisines=tuple(hidden.value) if kind == "avoid_cuisine" else (),
        closed=(tuple(hidden.value),) if kind == "chain_closure" else (),
        surcharge=kind == "evening_surcharge",
    )


def witness_plan(world: TravelWorld, trip: Trip, constraints, hidden: Hidden | None) -> dict | None:
    """The cheapest-first schedule meeting every constraint and, when given, the hidden fact; None if not found.

    With `hidden=None` on a meta task it is the plan of a planner unaware of the hidden fact.
    """
    fixed = {c.kind: c.answer[0] for c in constraints if c.kind not in ("free_attractions_of_type", "top_rated_of_type")}
    n = trip.travellers
    legs = [t for t in world.transports if t.seats >= n]
    outbound = [t for t in legs if t.date == trip.dates[0] and t.origin == trip.origin]
    inbound = [t for t in legs if t.date == trip.dates[-1] and t.origin == trip.destination]
    if "cheapest_direct_flight" in fixed:
        outbound = [t for t in outbound if t.number == fixed["cheapest_direct_flight"]]
    else:
        outbound = choose_cheapest([t for t in outbound if t.arrive <= 14 * 60], lambda t: t.price)[:2]
    if "return_train_window" in fixed:
        inbound = [t for t in inbound if t.number == fixed["return_train_window"]]
    else:
        inbound = choose_cheapest([t for t in inbound if t.depart >= 15 * 60], lambda t: t.price)[:2]
    hotels = choose_cheapest(world.hotels, lambda h: h.price)
    for kind in ("hotel_top_rated_star", "hotel_cheapest_brand"):
        if kind in fixed:
            hotels = [h for h in hotels if h.name == fixed[kind]]
    if hidden is not None and hidden.kind == "min_hotel_stars":
        hotels = [h for h in hotels if h.stars >= hidden.value[0]]
    prefs = _preferences(constraints, hidden)
    attractions = choose_cheapest(world.attractions, lambda a: a.price)
    restaurants = choose_cheapest(world.restaurants, lambda r: r.price)
    places = {name: world.place(name) for name in world.place_names()}
    for out_leg in outbound:
        for in_leg in inbound:
            for hotel in hotels[:2]:
                plan = schedule_trip(trip, out_leg, in_leg, hotel, attractions, restaurants, places, prefs)
                if plan is not None:
                    return plan
    return None


def _draw_hidden(rng, family: str, world: TravelWorld, trip: Trip, constraints, plan: dict) -> Hidden | None:
    """A hidden fact that the unaware witness `plan` violates, so it matters; None if none applies."""
    kinds = list(HIDDEN_KINDS[family])
    rng.shuffle(kinds)
    meals = [a["name"] for day in plan["days"] for a in day["activities"] if a["type"] == "meal"]
    required = {c.answer[0] for c in constraints if c.kind == "restaurant_cuisine_near"}
    for kind in kinds:
        if kind == "avoid_cuisine":
            cuisines = sorted({world.entity(m).cuisine for m in meals if m not in required}
                              - {world.entity(m).cuisine for m in required})
            if cuisines:
                cuisine = cuisines[int(rng.integers(len(cuisines)))]
                return Hidden(kind, (cuisine,), f"The travellers never eat {cuisine} food.")
        elif kind == "min_hotel_stars":
            if any(c.kind in _HOTEL_KINDS for c in constraints):
                continue
            stars = world.entity(plan["days"][0]["accommodation"]["name"]).stars + 1
            if stars <= 5:
                return Hidden(kind, (stars,), f"The travellers only stay in hotels with at least {stars} stars.")
        elif kind == "evening_surcharge":
            if any(a["type"] == "move" and a["mode"] == "taxi" and parse_clock(a["start"]) >= EVENING_SURCHARGE_FROM
                   for day in plan["days"] for a in day["activities"]):
                return Hidden(kind, (), f"Taxis leaving at or after {clock(EVENING_SURCHARGE_FROM)} cost 1.5x the fare (rounded up).")
        elif kind == "chain_closure":
            visits = [(world.entity(a["name"]).type, trip.weekdays[d]) for d, day in enumerate(plan["days"])
                      for a in day["activities"] if a["type"] == "attraction"]
            if visits:
                kind_of, weekday = visits[int(rng.integers(len(visits)))]
                return Hidden(kind, (kind_of, weekday), f"Every {kind_of} attraction is closed on {WEEKDAYS[weekday]}s.")
        elif kind == "true_budget":
            return Hidden(kind, (0,), "")
    return None


def _query(trip: Trip, constraints, budget: int) -> str:
    first, last = trip.dates[0], trip.dates[-1]
    lines = [
        f"Plan a {trip.days}-day trip for {trip.travellers} traveller(s) ({trip.rooms} room(s)) from {trip.origin} "
        f"to {trip.destination}, leaving on {first} ({WEEKDAYS[trip.weekdays[0]]}) and coming back on {last} "
        f"({WEEKDAYS[trip.weekdays[-1]]}).",
        "Requirements:",
    ]
    lines += [f"{index}. {c.text}" for index, c in enumerate(constraints, 1)]
    lines.append(f"{len(constraints) + 1}. The total cost for everyone must not exceed {budget}.")
    return "\n".join(lines)


def _round_up(value: float, step: int = 10) -> int:
    return int(-(-int(np.ceil(value)) // step) * step)


def generate_task(rng: np.random.Generator, difficulty: str = "medium", hidden_family: str | None = None) -> TravelTask:
    """Draw a feasible travel task.

    Args:
        rng: the env's generator.
        difficulty: a key of `TRAVEL_TIERS`.
        hidden_family: None, or a key of `HIDDEN_KINDS` for the meta variants.

    Returns:
        The task, whose witness plan meets every rule, constraint and hidden fact.

    Raises:
        ValueError: on an unknown difficulty or hidden family.
        RuntimeError: if no feasible task was found in `_MAX_ATTEMPTS` draws (never seen in tests).
    """
    if difficulty not in TRAVEL_TIERS:
        raise ValueError(f"difficulty={difficulty!r}; allowed: {sorted(TRAVEL_TIERS)}")
    if hidden_family is not None and hidden_family not in HIDDEN_KINDS:
        raise ValueError(f"hidden={hidden_family!r}; allowed: None or {sorted(HIDDEN_KINDS)}")
    tier = TRAVEL_TIERS[difficulty]
    for _ in range(_MAX_ATTEMPTS):
        world, trip = generate_world(rng, tier)
        constraints = _draw_constraints(rng, world, trip, tier.num_constraints)
        if constraints is None:
            continue
        plan = witness_plan(world, trip, constraints, None)
        if plan is None:
            continue
        hidden = None
        budget = _round_up(plan["total_cost"] * (1 + tier.budget_slack))
        if hidden_family is not None:
            hidden = _draw_hidden(rng, hidden_family, world, trip, constraints, plan)
            if hidden is None:
                continue
            plan = witness_plan(world, trip, constraints, hidden)
            if plan is None:
                continue
            budget = _round_up(plan["total_cost"] * (1 + tier.budget_slack))
            if hidden.kind == "true_budget":
                true_budget = _round_up(plan["total_cost"] * 1.02)
                hidden = Hidden(hidden.kind, (true_budget,), f"The travellers can really spend at most {true_budget}.")
                budget = _round_up(plan["total_cost"] * 1.35)
        witness = json.dumps(plan, separators=(",", ":"))
        return TravelTask(world, trip, constraints, budget, hidden, witness, _query(trip, constraints, budget), difficulty)
    raise RuntimeError(f"no feasible {difficulty} travel task in {_MAX_ATTEMPTS} draws; the tier sizes are too tight")


def station_of(trip: Trip, mode: str) -> str:
    """The destination's station for a transport mode (re-exported for the env's tools)."""
    return station_name(trip.destination, mode)
