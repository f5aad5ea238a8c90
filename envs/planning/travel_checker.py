"""The exact travel-plan checker: schema validation, DeepPlanning's eight commonsense dimensions, hard constraints.

Scoring follows DeepPlanning (arXiv 2601.18137, `evaluation/constraints_commonsense.py`): each
commonsense dimension is all-or-nothing and weighs 1/8; the personalized score is 1 only when every hard
constraint holds; `composite = (commonsense + personalized) / 2`; `case_acc` = both perfect. Added here:
`constraint_fraction` (the TIP paper's fraction of hard constraints met) and `partial_score` (a dense
score for shaping). Facts the plan names but the world lacks fail `sandbox_compliance` only; the other
dimensions skip them, so one planted error fails exactly one dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.core import printable
from envs.planning.tools import finite_number
from envs.planning.travel_schedule import (
    DINNER_WINDOW,
    EVENING_SURCHARGE_FROM,
    LUNCH_WINDOW,
    MEAL_MINUTES,
    day_needs,
)
from envs.planning.travel_tasks import TravelTask
from envs.planning.travel_world import (
    WEEKDAYS,
    Attraction,
    Hotel,
    Restaurant,
    clock,
    parse_clock,
    route_between,
    station_name,
)

__all__ = ["DIMENSIONS", "PlanCheck", "read_plan", "check_plan", "PLAN_SCHEMA_TEXT"]

DIMENSIONS = (
    "route_consistency",
    "sandbox_compliance",
    "itinerary_structure",
    "time_feasibility",
    "business_hours",
    "duration_rationality",
    "cost_accuracy",
    "activity_diversity",
)
_ACTIVITY_KEYS = {
    "intercity": ("number", "from", "to", "start", "end", "cost"),
    "move": ("from", "to", "mode", "start", "end", "cost"),
    "attraction": ("name", "start", "end", "cost"),
    "meal": ("name", "start", "end", "cost"),
}
_MAX_DAYS, _MAX_ACTIVITIES, _MAX_TEXT = 10, 40, 200
PLAN_SCHEMA_TEXT = (
    'plan = {"days": [{"day": 1, "activities": [...], "accommodation": {"name": <hotel>, "cost": <price x rooms>} '
    'or null on the last day}, ...], "total_cost": <number>}. Activities, in time order, with costs for the '
    'whole party: {"type": "intercity", "number", "from": <city>, "to": <city>, "start", "end", "cost"}, '
    '{"type": "move", "from": <place>, "to": <place>, "mode": "walk"|"taxi", "start", "end", "cost"}, '
    '{"type": "attraction", "name", "start", "end", "cost"}, {"type": "meal", "name", "start", "end", "cost"}. '
    'Times are "HH:MM".'
)


# ----------------------------------------------------------------------------- schema
def _read_activity(raw, path: str, errors: list[str]) -> dict | None:
    if not isinstance(raw, dict):
        errors.append(f"{path} must be an object")
        return None
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _ACTIVITY_KEYS:
        errors.append(f"{path}.type must be one of {', '.join(_ACTIVITY_KEYS)}")
        return None
    expected = ("type",) + _ACTIVITY_KEYS[kind]
    missing = [key for key in expected if key not in raw]
    extra = [printable(key, 20) for key in raw if key not in expected]
    if missing or extra:
        errors.append(f"{path} ({kind}) needs exactly the keys {', '.join(expected)}"
                      + (f"; missing {', '.join(missing)}" if missing else "") + (f"; unexpected {', '.join(extra)}" if extra else ""))
        return None
    activity = {"type": kind}
    for key in _ACTIVITY_KEYS[kind]:
        value = raw[key]
        if key in ("start", "end"):
            minute = parse_clock(value)
            if minute is None:
                errors.append(f"{path}.{key} must be a time \"HH:MM\" between 00:00 and 23:59")
                return None
            activity[key] = minute
        elif key == "cost":
            if not finite_number(value) or value < 0:
                errors.append(f"{path}.cost must be a number >= 0")
                return None
            activity[key] = float(value)
        elif key == "mode" and value not in ("walk", "taxi"):
            errors.append(f'{path}.mode must be "walk" or "taxi"')
            return None
        elif not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
            errors.append(f"{path}.{key} must be a non-empty string of at most {_MAX_TEXT} characters")
            return None
        else:
            activity[key] = value.strip()
    return activity


def read_plan(raw: object) -> tuple[dict | None, list[str]]:
    """Validate a submitted plan against the schema (`PLAN_SCHEMA_TEXT`).

    Args:
        raw: the decoded `plan` argument of `submit_plan`.

    Returns:
        `(plan, [])` with times as minutes after midnight and costs as floats, or `(None, errors)` with
        readable messages naming the path of each problem (at most five).
    """
    errors: list[str] = []
    if not isinstance(raw, dict):
        return None, ['the plan must be a JSON object {"days": [...], "total_cost": ...}']
    if set(raw) != {"days", "total_cost"}:
        extra = sorted(printable(key, 20) for key in raw if key not in ("days", "total_cost"))
        return None, ["the plan needs exactly the keys days and total_cost" + (f"; unexpected {', '.join(extra)}" if extra else "")]
    days_raw, total = raw["days"], raw["total_cost"]
    if not isinstance(days_raw, list) or not 1 <= len(days_raw) <= _MAX_DAYS:
        return None, [f"plan.days must be a list of 1 to {_MAX_DAYS} days"]
    if not finite_number(total) or total < 0:
        errors.append("plan.total_cost must be a number >= 0")
    days = []
    for index, day_raw in enumerate(days_raw):
        path = f"plan.days[{index}]"
        if not isinstance(day_raw, dict) or set(day_raw) != {"day", "activities", "accommodation"}:
            errors.append(f"{path} must be an object with exactly the keys day, activities, accommodation")
            continue
        number, activities_raw, stay = day_raw["day"], day_raw["activities"], day_raw["accommodation"]
        if isinstance(number, bool) or not isinstance(number, int):
            errors.append(f"{path}.day must be an integer")
        if not isinstance(activities_raw, list) or len(activities_raw) > _MAX_ACTIVITIES:
            errors.append(f"{path}.activities must be a list of at most {_MAX_ACTIVITIES} activities")
            continue
        activities = [_read_activity(a, f"{path}.activities[{i}]", errors) for i, a in enumerate(activities_raw)]
        accommodation = None
        if stay is not None:
            if (not isinstance(stay, dict) or set(stay) != {"name", "cost"} or not isinstance(stay["name"], str)
                    or not stay["name"].strip() or len(stay["name"]) > _MAX_TEXT
                    or not finite_number(stay["cost"]) or stay["cost"] < 0):
                errors.append(f'{path}.accommodation must be null or {{"name": <hotel>, "cost": <number >= 0>}}')
            else:
                accommodation = (stay["name"].strip(), float(stay["cost"]))
        days.append({"day": number, "activities": activities, "accommodation": accommodation})
    if errors:
        return None, errors[:5]
    return {"days": days, "total_cost": float(total)}, []


# ----------------------------------------------------------------------------- checking
@dataclass
class PlanCheck:
    """The checker's verdict on one plan.

    Attributes:
        dimensions: each commonsense dimension -> passed.
        constraints: each hard constraint (template kind, `budget`, and `unstated_preference` in the
            preference variant) -> met.
        messages: failure messages per dimension or constraint (the agent's feedback).
        revealed: hidden facts disclosed by this plan's failures (meta variants), JSON-ready.
        checks_passed: atomic commonsense checks that passed.
        checks_total: atomic commonsense checks made.
    """

    dimensions: dict = field(default_factory=lambda: {name: True for name in DIMENSIONS})
    constraints: dict = field(default_factory=dict)
    messages: dict = field(default_factory=dict)
    revealed: dict = field(default_factory=dict)
    checks_passed: int = 0
    checks_total: int = 0

    def check(self, dimension: str, ok: bool, message: str) -> bool:
        """Record one atomic commonsense check; returns `ok` so callers can guard dependent checks."""
        self.checks_total += 1
        self.checks_passed += int(ok)
        if not ok:
            self.dimensions[dimension] = False
            self.messages.setdefault(dimension, []).append(message)
        return ok

    def require(self, name: str, ok: bool, message: str) -> None:
        """Record whether hard constraint `name` holds (a constraint fails if any of its checks fails)."""
        self.constraints[name] = self.constraints.get(name, True) and ok
        if not ok:
            self.messages.setdefault(name, []).append(message)

    def scores(self) -> dict:
        """DeepPlanning's scores plus `constraint_fraction` and `partial_score` (all floats in [0, 1])."""
        commonsense = sum(self.dimensions.values()) / len(DIMENSIONS)
        personalized = float(all(self.constraints.values()))
        fraction = sum(self.constraints.values()) / max(len(self.constraints), 1)
        atomic = self.checks_passed / max(self.checks_total, 1)
        return {
            "commonsense": commonsense,
            "personalized": personalized,
            "composite": (commonsense + personalized) / 2,
            "case_acc": float(commonsense == 1.0 and personalized == 1.0),
            "constraint_fraction": fraction,
            "partial_score": (atomic + fraction) / 2,
        }


def _true_cost(task: TravelTask, activity: dict, check: PlanCheck) -> float | None:
    """What the world charges for `activity`, or None when the plan names something unknown."""
    world, trip = task.world, task.trip
    kind = activity["type"]
    if kind == "intercity":
        record = activity.get("record")
        return None if record is None else record.price * trip.travellers
    if kind == "move":
        a, b = world.place(activity["from"]), world.place(activity["to"])
        if a is None or b is None:
            return None
        surcharge = task.hidden is not None and task.hidden.kind == "evening_surcharge" and activity["start"] >= EVENING_SURCHARGE_FROM
        return route_between(a, b, trip.travellers, surcharge).cost
    entity = world.entity(activity["name"])
    wanted = Attraction if kind == "attraction" else Restaurant
    return entity.price * trip.travellers if isinstance(entity, wanted) else None


def _check_day(task: TravelTask, index: int, day: dict, here, check: PlanCheck, seen: dict) -> str | None:
    """Check one day's activities in order; returns where the day ends (None when unknown)."""
    world, trip = task.world, task.trip
    weekday, date = trip.weekdays[index] if index < trip.days else -1, trip.dates[min(index, trip.days - 1)]
    previous_end = None
    for position, activity in enumerate(day["activities"]):
        label = f"day {index + 1} activity {position + 1}"
        kind, start, end = activity["type"], activity["start"], activity["end"]
        check.check("time_feasibility", end >= start, f"{label} ends ({clock(end)}) before it starts ({clock(start)})")
        if previous_end is not None:
            check.check("time_feasibility", start >= previous_end,
                        f"{label} starts at {clock(start)}, before the previous activity ends ({clock(previous_end)})")
        previous_end = end
        if kind == "intercity":
            record = world.transport(activity["number"], date)
            activity["record"] = record
            if check.check("sandbox_compliance", record is not None, f"{label}: no departure {activity['number']} on {date}"):
                check.check("sandbox_compliance", (record.origin, record.destination) == (activity["from"], activity["to"]),
                            f"{label}: {record.number} runs {record.origin} -> {record.destination}")
                check.check("sandbox_compliance", (record.depart, record.arrive) == (start, end),
                            f"{label}: {record.number} runs {clock(record.depart)}-{clock(record.arrive)}")
                check.check("sandbox_compliance", record.seats >= trip.travellers,
                            f"{label}: {record.number} has only {record.seats} seats left")
                if activity["from"] == trip.destination:
                    station = station_name(trip.destination, record.mode)
                    check.check("route_consistency", here in (None, station), f"{label}: you are at {here}, not at {station}")
                here = station_name(record.destination, record.mode) if record.destination == trip.destination else None
            else:
                here = None
        elif kind == "move":
            a, b = world.place(activity["from"]), world.place(activity["to"])
            check.check("route_consistency", here is None or activity["from"] == here,
                        f"{label}: the move starts at {activity['from']} but you are at {here}")
            check.check("sandbox_compliance", a is not None, f"{label}: unknown place {activity['from']}")
            check.check("sandbox_compliance", b is not None, f"{label}: unknown place {activity['to']}")
            if a is not None and b is not None:
                route = route_between(a, b, trip.travellers)
                check.check("sandbox_compliance", route.mode == activity["mode"],
                            f"{label}: {activity['from']} -> {activity['to']} is {route.distance} km, by {route.mode}")
                check.check("time_feasibility", end - start >= route.minutes,
                            f"{label}: {activity['from']} -> {activity['to']} takes {route.minutes} minutes")
            here = activity["to"]
        else:
            name = activity["name"]
            check.check("route_consistency", here is None or name == here, f"{label}: you are at {here}, not at {name}; add a move")
            entity = world.entity(name)
            wanted = Attraction if kind == "attraction" else Restaurant
            if check.check("sandbox_compliance", isinstance(entity, wanted), f"{label}: no {kind} called {name} in {trip.destination}"):
                _check_visit(task, label, kind, entity, start, end, weekday, check)
            check.check("activity_diversity", name not in seen, f"{label}: {name} was already visited")
            seen[name] = index
            here = name
        cost = _true_cost(task, activity, check)
        if cost is not None:
            check.check("cost_accuracy", abs(cost - activity["cost"]) < 0.01, f"{label} costs {cost:g} for the party, not {activity['cost']:g}")
        activity["true_cost"] = activity["cost"] if cost is None else cost
    return here


def _check_visit(task, label, kind, entity, start, end, weekday, check: PlanCheck) -> None:
    if kind == "attraction":
        hidden = task.hidden
        chain_closed = hidden is not None and hidden.kind == "chain_closure" and (entity.type, weekday) == tuple(hidden.value)
        check.check("business_hours", entity.closed_weekday != weekday, f"{label}: {entity.name} is closed on {WEEKDAYS[weekday]}s")
        if not check.check("business_hours", not chain_closed, f"{label}: {entity.name} is closed: {hidden.reveal if hidden else ''}"):
            check.revealed["closed"] = {"type": entity.type, "weekday": WEEKDAYS[weekday]}
        check.check("duration_rationality", entity.min_visit <= end - start <= entity.max_visit,
                    f"{label}: a visit to {entity.name} lasts {entity.min_visit}-{entity.max_visit} minutes")
    else:
        check.check("duration_rationality", MEAL_MINUTES[0] <= end - start <= MEAL_MINUTES[1],
                    f"{label}: a meal lasts {MEAL_MINUTES[0]}-{MEAL_MINUTES[1]} minutes")
    check.check("business_hours", entity.open <= start and end <= entity.close,
                f"{label}: {entity.name} is open {clock(entity.open)}-{clock(entity.close)}")


def _check_structure(task: TravelTask, days: list[dict], ends: list, check: PlanCheck) -> None:
    first = days[0]["activities"][0] if days and days[0]["activities"] else None
    last = days[-1]["activities"][-1] if days and days[-1]["activities"] else None
    arrive = first["end"] if first and first["type"] == "intercity" else None
    depart = last["start"] if last and last["type"] == "intercity" else None
    any_attraction = False
    for index, day in enumerate(days):
        final = index == len(days) - 1
        stay = day["accommodation"]
        label = f"day {index + 1}"
        check.check("itinerary_structure", (stay is None) == final,
                    f"{label}: " + ("the last day has no accommodation" if final else "every night needs an accommodation"))
        if stay is not None and not final:
            check.check("itinerary_structure", ends[index] in (None, stay[0]), f"{label} must end at {stay[0]}")
        lunch, dinner, attraction = day_needs(arrive if index == 0 else None, depart if final else None)
        meals = [a["start"] for a in day["activities"] if a["type"] == "meal"]
        sights = sum(a["type"] == "attraction" for a in day["activities"])
        any_attraction |= sights > 0
        if lunch:
            check.check("itinerary_structure", any(LUNCH_WINDOW[0] <= m <= LUNCH_WINDOW[1] for m in meals),
                        f"{label} needs lunch (a meal starting {clock(LUNCH_WINDOW[0])}-{clock(LUNCH_WINDOW[1])})")
        if dinner:
            check.check("itinerary_structure", any(DINNER_WINDOW[0] <= m <= DINNER_WINDOW[1] for m in meals),
                        f"{label} needs dinner (a meal starting {clock(DINNER_WINDOW[0])}-{clock(DINNER_WINDOW[1])})")
        if attraction:
            check.check("itinerary_structure", sights > 0, f"{label} has time for at least one attraction")
    check.check("itinerary_structure", any_attraction, "the trip needs at least one attraction")


def _check_route(task: TravelTask, days: list[dict], check: PlanCheck) -> None:
    trip = task.trip
    check.check("route_consistency", len(days) == trip.days, f"the trip lasts {trip.days} days, the plan has {len(days)}")
    check.check("route_consistency", [d["day"] for d in days] == list(range(1, len(days) + 1)), "days must be numbered 1, 2, ...")
    legs = [(i, p, a) for i, d in enumerate(days) for p, a in enumerate(d["activities"]) if a["type"] == "intercity"]
    first_ok = bool(legs) and legs[0][:2] == (0, 0) and (legs[0][2]["from"], legs[0][2]["to"]) == (trip.origin, trip.destination)
    check.check("route_consistency", first_ok, f"day 1 must start with a train or flight {trip.origin} -> {trip.destination}")
    end = (len(days) - 1, len(days[-1]["activities"]) - 1)
    last_ok = len(legs) == 2 and legs[-1][:2] == end and (legs[-1][2]["from"], legs[-1][2]["to"]) == (trip.destination, trip.origin)
    check.check("route_consistency", last_ok,
                f"the last day must end with a train or flight {trip.destination} -> {trip.origin}, and no other intercity legs")


def check_plan(task: TravelTask, plan: dict) -> PlanCheck:
    """Score a schema-valid plan (from `read_plan`) against `task`.

    Args:
        task: the travel task (world, trip, constraints, budget, hidden parameter).
        plan: the plan as returned by `read_plan` (it is annotated in place with the true costs).

    Returns:
        The verdict; `verdict.scores()` gives DeepPlanning's scores.
    """
    check = PlanCheck()
    days = plan["days"]
    _check_route(task, days, check)
    seen: dict = {}
    ends = []
    here = None
    for index, day in enumerate(days):
        here = _check_day(task, index, day, here, check, seen)
        ends.append(here)
        here = day["accommodation"][0] if day["accommodation"] else None
    _check_structure(task, days, ends, check)
    true_total = 0.0
    for index, day in enumerate(days):
        true_total += sum(a["true_cost"] for a in day["activities"])
        stay = day["accommodation"]
        if stay is not None:
            hotel = task.world.entity(stay[0])
            if check.check("sandbox_compliance", isinstance(hotel, Hotel), f"day {index + 1}: no hotel called {stay[0]}"):
                price = hotel.price * task.trip.rooms
                check.check("cost_accuracy", abs(price - stay[1]) < 0.01, f"day {index + 1}: {hotel.name} costs {price} for {task.trip.rooms} room(s)")
                true_total += price
            else:
                true_total += stay[1]
    check.check("cost_accuracy", abs(true_total - plan["total_cost"]) < 0.01, f"the total cost is {true_total:g}, not {plan['total_cost']:g}")
    if task.hidden is not None and task.hidden.kind == "evening_surcharge" and check.messages.get("cost_accuracy"):
        if any(a["type"] == "move" and a["mode"] == "taxi" and a["start"] >= EVENING_SURCHARGE_FROM for d in days for a in d["activities"]):
            check.messages["cost_accuracy"].append(task.hidden.reveal)
            check.revealed["evening_surcharge"] = {"from": clock(EVENING_SURCHARGE_FROM), "factor": 1.5}
    _check_constraints(task, days, true_total, check)
    return check


def _check_constraints(task: TravelTask, days: list[dict], true_total: float, check: PlanCheck) -> None:
    acts = [a for d in days for a in d["activities"]]
    legs = [a for a in acts if a["type"] == "intercity"]
    stays = [d["accommodation"][0] for d in days[:-1] if d["accommodation"]]
    visited = {a["name"] for a in acts if a["type"] == "attraction"}
    meals = [a["name"] for a in acts if a["type"] == "meal"]
    for constraint in task.constraints:
        kind, answer = constraint.kind, constraint.answer
        if kind == "cheapest_direct_flight":
            ok = bool(legs) and legs[0]["number"] == answer[0]
        elif kind == "return_train_window":
            ok = len(legs) > 1 and legs[-1]["number"] == answer[0]
        elif kind in ("hotel_top_rated_star", "hotel_cheapest_brand"):
            ok = bool(stays) and all(name == answer[0] for name in stays)
        elif kind == "restaurant_cuisine_near":
            ok = answer[0] in meals
        else:
            ok = set(answer) <= visited
        check.require(kind, ok, f"not met: {constraint.text}")
    budget, hidden = task.true_budget(), task.hidden
    check.require("budget", true_total <= budget + 1e-9, f"the plan costs {true_total:g}, over the budget")
    if hidden is not None and hidden.kind == "true_budget" and true_total > budget + 1e-9:
        check.messages["budget"].append(hidden.reveal)
        check.revealed["true_budget"] = budget
    if hidden is not None and hidden.kind in ("avoid_cuisine", "min_hotel_stars"):
        if hidden.kind == "avoid_cuisine":
            bad = [m for m in meals if getattr(task.world.entity(m), "cuisine", None) == hidden.value[0]]
        else:
            bad = [s for s in stays if getattr(task.world.entity(s), "stars", 5) < hidden.value[0]]
        check.require("unstated_preference", not bad, f"the travellers rejected {', '.join(bad[:3])}: {hidden.reveal}")
        if bad:
            check.revealed[hidden.kind] = hidden.value[0]
