"""Travel planning: witness feasibility, unique constraint answers, one planted violation per dimension, hostile tools."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import agent_seed
from envs.core import MAX_OBSERVATION_CHARS
from envs.planning.travel import TravelPlanning
from envs.planning.travel_checker import DIMENSIONS, check_plan, read_plan
from envs.planning.travel_schedule import plan_total
from envs.planning.travel_tasks import generate_task, witness_plan
from envs.planning.travel_world import TRAVEL_TIERS, parse_clock, route_between

TIERS = sorted(TRAVEL_TIERS)
HIDDEN = (None, "preference", "quirk", "budget")


def _task(seed, difficulty="medium", hidden=None):
    return generate_task(np.random.default_rng(seed), difficulty, hidden)


def _verdict(task, plan_dict):
    plan, errors = read_plan(json.loads(json.dumps(plan_dict)))
    assert not errors, errors
    return check_plan(task, plan)


def _failing(verdict) -> set[str]:
    return {name for name, passed in verdict.dimensions.items() if not passed}


# ----------------------------------------------------------------------------- generator and witness
@pytest.mark.parametrize("difficulty", TIERS)
def test_every_witness_passes_the_checker(difficulty):
    """1,200 tasks in all (3 tiers x 4 variants x 100 seeds): the witness scores case_acc 1 within budget."""
    tier = TRAVEL_TIERS[difficulty]
    for hidden in HIDDEN:
        for seed in range(100):
            task = _task(seed, difficulty, hidden)
            witness = json.loads(task.witness)
            verdict = _verdict(task, witness)
            scores = verdict.scores()
            assert scores["case_acc"] == 1.0 and scores["partial_score"] == 1.0, (difficulty, hidden, seed, verdict.messages)
            assert witness["total_cost"] == plan_total(witness) <= task.true_budget() <= task.budget
            assert tier.days[0] <= task.trip.days <= tier.days[1] and len(task.constraints) == tier.num_constraints
            if hidden is None:
                # The budget is the witness cost x (1 + slack), rounded up to a multiple of 10.
                stretched = witness["total_cost"] * (1 + tier.budget_slack)
                assert task.budget % 10 == 0 and stretched <= task.budget <= stretched + 11


def _best(world, trip, constraint):
    """The entities that attain the template's best value, computed here from the raw world."""
    params, n = dict(constraint.params), trip.travellers
    if constraint.kind == "cheapest_direct_flight":
        pool = [(t.price, t.number) for t in world.transports if t.mode == "flight" and not t.stops and t.seats >= n
                and t.date == trip.dates[0] and t.origin == trip.origin]
    elif constraint.kind == "return_train_window":
        low, high = parse_clock(params["earliest"]), parse_clock(params["latest"])
        pool = [(0, t.number) for t in world.transports if t.mode == "train" and t.date == trip.dates[-1]
                and t.origin == trip.destination and low <= t.depart <= high]
    elif constraint.kind == "hotel_top_rated_star":
        pool = [(-h.rating, h.name) for h in world.hotels if h.stars == params["stars"]]
    elif constraint.kind == "hotel_cheapest_brand":
        pool = [(h.price, h.name) for h in world.hotels if h.brand == params["brand"]]
    elif constraint.kind == "restaurant_cuisine_near":
        anchor = world.entity(params["attraction"])
        pool = [(-r.rating, r.name) for r in world.restaurants if r.cuisine == params["cuisine"]
                and math.hypot(r.x - anchor.x, r.y - anchor.y) <= 20.5]
    elif constraint.kind == "top_rated_of_type":
        pool = [(-a.rating, a.name) for a in world.attractions if a.type == params["type"]]
    else:
        return sorted(a.name for a in world.attractions if a.type == params["type"] and a.price == 0)
    best = min(score for score, _ in pool)
    return sorted(name for score, name in pool if score == best)


def test_constraint_answers_are_unique_and_never_tied():
    kinds = set()
    for difficulty in TIERS:
        for seed in range(150):
            task = _task(seed, difficulty)
            for constraint in task.constraints:
                kinds.add(constraint.kind)
                assert _best(task.world, task.trip, constraint) == sorted(constraint.answer), (difficulty, seed, constraint)
                assert constraint.text and not any(name in constraint.text for name in constraint.answer
                                                   if constraint.kind != "restaurant_cuisine_near")
    assert len(kinds) == 7  # every template is drawn


def test_generation_is_a_function_of_the_seed():
    assert _task(3, "hard") == _task(3, "hard")
    assert _task(3, "hard") != _task(4, "hard")


# ----------------------------------------------------------------------------- planted violations
def _moves(plan):
    for d, day in enumerate(plan["days"]):
        for a, activity in enumerate(day["activities"]):
            if activity["type"] == "move":
                yield d, a, activity


def _required(task) -> set[str]:
    return {name for c in task.constraints for name in c.answer}


def _plant_route(task, plan):
    """Drop a move into a visit: the agent teleports."""
    for d, a, move in _moves(plan):
        following = plan["days"][d]["activities"][a + 1:a + 2]
        if following and following[0]["type"] in ("attraction", "meal"):
            del plan["days"][d]["activities"][a]
            plan["total_cost"] -= move["cost"]
            return plan
    return None


def _plant_sandbox(task, plan):
    """Rename an unconstrained attraction everywhere it appears: it does not exist."""
    for day in plan["days"]:
        for activity in day["activities"]:
            if activity["type"] == "attraction" and activity["name"] not in _required(task):
                old = activity["name"]
                for other in (a for d in plan["days"] for a in d["activities"]):
                    for key in ("name", "from", "to"):
                        if other.get(key) == old:
                            other[key] = "Imaginary Museum"
                return plan
    return None


def _plant_sandbox_timetable(task, plan):
    """Leave five minutes before the timetable says the outbound departs."""
    leg = plan["days"][0]["activities"][0]
    leg["start"] = _clock(parse_clock(leg["start"]) - 5)
    return plan


def _plant_structure(task, plan):
    """End the first night somewhere other than the hotel."""
    day = plan["days"][0]
    move = day["activities"][-1]
    if len(plan["days"]) < 2 or move["type"] != "move" or len(day["activities"]) < 3:
        return None
    day["activities"].pop()
    plan["total_cost"] -= move["cost"]
    return plan


def _clock(minute):
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _plant_time(task, plan):
    """A move one minute shorter than the route takes (the witness's moves take exactly the route time)."""
    for _, _, move in _moves(plan):
        start, end = parse_clock(move["start"]), parse_clock(move["end"])
        if end - start >= 1:
            assert end - start == route_between(task.world.place(move["from"]), task.world.place(move["to"]), 1).minutes
            move["end"] = _clock(end - 1)
            return plan
    return None


def _plant_hours(task, plan):
    """Start a visit before opening time, where the witness waited for the doors to open."""
    for day in plan["days"]:
        for index, activity in enumerate(day["activities"]):
            if activity["type"] != "attraction" or index == 0:
                continue
            sight = task.world.entity(activity["name"])
            start, previous_end = parse_clock(activity["start"]), parse_clock(day["activities"][index - 1]["end"])
            if start == sight.open and start > previous_end:
                shift = min(start - previous_end, 15)
                activity["start"], activity["end"] = _clock(start - shift), _clock(parse_clock(activity["end"]) - shift)
                return plan
    return None


def _plant_duration(task, plan):
    """Cut an attraction visit 10 minutes below its minimum length."""
    for day in plan["days"]:
        for activity in day["activities"]:
            if activity["type"] == "attraction":
                sight = task.world.entity(activity["name"])
                activity["end"] = _clock(parse_clock(activity["start"]) + sight.min_visit - 10)
                return plan
    return None


def _plant_cost(task, plan):
    plan["total_cost"] += 7
    return plan


def _swap_stop(task, plan, day_index, index, new_name):
    """Visit `new_name` instead of the stop at `index`, re-routing its two moves; None if that breaks a rule."""
    world, trip = task.world, task.trip
    activities = plan["days"][day_index]["activities"]
    stop, new = activities[index], world.entity(new_name)
    start, end = parse_clock(stop["start"]), parse_clock(stop["end"])
    if not (new.open <= start and end <= new.close) or getattr(new, "closed_weekday", -2) == trip.weekdays[day_index]:
        return None
    before, after = activities[index - 1], activities[index + 1] if index + 1 < len(activities) else None
    if before["type"] != "move" or after is None or after["type"] != "move":
        return None
    for move, source, target in ((before, before["from"], new_name), (after, new_name, after["to"])):
        if source == target:
            return None
        route = route_between(world.place(source), world.place(target), trip.travellers)
        if parse_clock(move["start"]) + route.minutes >= 24 * 60:
            return None
        move.update({"from": source, "to": target, "mode": route.mode, "cost": route.cost})
        move["end"] = _clock(parse_clock(move["start"]) + route.minutes)
    following = activities[index + 2] if index + 2 < len(activities) else None
    if parse_clock(before["end"]) > start or (following and parse_clock(after["end"]) > parse_clock(following["start"])):
        return None
    stop["name"], stop["cost"] = new_name, new.price * trip.travellers
    plan["total_cost"] = plan_total(plan)
    return plan


def _meal_slots(plan):
    return [(d, i, a["name"]) for d, day in enumerate(plan["days"]) for i, a in enumerate(day["activities"]) if a["type"] == "meal"]


def _plant_diversity(task, plan):
    """Eat twice at the same restaurant."""
    meals = _meal_slots(plan)
    for d, i, name in meals[1:]:
        if name in _required(task):
            continue
        planted = _swap_stop(task, copy.deepcopy(plan), d, i, meals[0][2])
        if planted is not None and plan_total(planted) <= task.budget:
            return planted
    return None


def _plant_personalized(task, plan):
    """Eat the constrained meal somewhere else: only the hard constraint fails."""
    wanted = next((c.answer[0] for c in task.constraints if c.kind == "restaurant_cuisine_near"), None)
    used = {name for _, _, name in _meal_slots(plan)}
    for d, i, name in _meal_slots(plan):
        if name != wanted:
            continue
        for other in task.world.restaurants:
            if other.name not in used:
                planted = _swap_stop(task, copy.deepcopy(plan), d, i, other.name)
                if planted is not None:
                    return planted
    return None


PLANTS = {
    "route_consistency": [_plant_route],
    "sandbox_compliance": [_plant_sandbox, _plant_sandbox_timetable],
    "itinerary_structure": [_plant_structure],
    "time_feasibility": [_plant_time],
    "business_hours": [_plant_hours],
    "duration_rationality": [_plant_duration],
    "cost_accuracy": [_plant_cost],
    "activity_diversity": [_plant_diversity],
}


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_one_planted_violation_fails_exactly_its_dimension(dimension):
    assert set(PLANTS) == set(DIMENSIONS)
    for plant in PLANTS[dimension]:
        planted = 0
        for seed in range(120):
            task = _task(seed, ("medium", "hard")[seed % 2])
            plan = plant(task, json.loads(task.witness))
            if plan is None:
                continue
            verdict = _verdict(task, plan)
            assert _failing(verdict) == {dimension}, (plant.__name__, seed, verdict.messages)
            assert verdict.scores()["personalized"] == 1.0 and verdict.scores()["case_acc"] == 0.0
            assert verdict.messages[dimension], "a failure comes with a readable reason"
            planted += 1
            if planted == 8:
                break
        assert planted >= 5, f"{plant.__name__} applied to only {planted} of 120 tasks"


def test_planted_constraint_violations_fail_only_personalized():
    planted = 0
    for seed in range(150):
        task = _task(seed, "hard")
        plan = _plant_personalized(task, json.loads(task.witness))
        if plan is None:
            continue
        verdict = _verdict(task, plan)
        scores = verdict.scores()
        assert _failing(verdict) == set() and scores["personalized"] == 0.0, (seed, verdict.messages)
        assert verdict.constraints["restaurant_cuisine_near"] is False
        assert scores["composite"] == 0.5 and 0 < scores["constraint_fraction"] < 1
        planted += 1
    assert planted >= 5
    # A budget one below the witness cost: the only failure is the budget constraint.
    task = _task(0, "medium")
    witness = json.loads(task.witness)
    verdict = _verdict(dataclasses.replace(task, budget=witness["total_cost"] - 1), witness)
    assert verdict.constraints == {**{c.kind: True for c in task.constraints}, "budget": False}
    assert verdict.scores()["constraint_fraction"] == len(task.constraints) / (len(task.constraints) + 1)


def test_hidden_facts_are_revealed_by_feedback():
    """The unaware plan of each meta variant fails, and the feedback names the hidden fact."""
    seen = set()
    for seed in range(40):
        for family in ("preference", "quirk", "budget"):
            task = _task(seed, "easy", family)
            unaware = witness_plan(task.world, task.trip, task.constraints, None)
            verdict = _verdict(task, unaware)
            if verdict.scores()["case_acc"] == 1.0:
                assert task.hidden.kind == "true_budget"  # a frugal plan may fit the real budget
                continue
            assert verdict.revealed, (seed, family, verdict.messages)
            assert task.hidden.reveal in "\n".join(sum(verdict.messages.values(), []))
            seen.add(task.hidden.kind)
    assert seen >= {"avoid_cuisine", "min_hotel_stars", "evening_surcharge", "chain_closure"}


# ----------------------------------------------------------------------------- env, tools, baselines
def _step(env, call):
    text = "\\boxed{" + (call if isinstance(call, str) else json.dumps(call)) + "}"
    return env.step(text)


HOSTILE = [
    {"name": "search_flights", "arguments": {"origin": 5, "destination": "X", "date": "2026-01-01"}},
    {"name": "search_flights", "arguments": {"origin": "A" * 10_000, "destination": "X", "date": "2026-01-01"}},
    {"name": "search_flights", "arguments": {"origin": "A", "destination": "B", "date": "tomorrow"}},
    {"name": "search_hotels", "arguments": {"city": "X", "stars": True}},
    {"name": "search_hotels", "arguments": {"city": "X", "stars": 9}},
    {"name": "search_hotels", "arguments": {"city": {"nested": [1, [2, {"x": None}]]}}},
    {"name": "recommend_restaurants", "arguments": {"near": "Nowhere", "max_km": float("inf")}},
    {"name": "recommend_restaurants", "arguments": {"near": "Nowhere"}},
    {"name": "get_attraction_details", "arguments": {}},
    {"name": "get_attraction_details", "arguments": {"name": "x", "extra": 1}},
    {"name": "get_route", "arguments": "{not json"},
    {"name": "rm -rf /", "arguments": {}},
    {"name": ["submit_plan"]},
    {"arguments": {}},
    {"name": "submit_plan", "arguments": {"plan": [[[[[]]]]]}},
    {"name": "submit_plan", "arguments": {"plan": {"days": [{"day": 1, "activities": [{"type": "teleport"}], "accommodation": None}], "total_cost": 1}}},
    {"name": "submit_plan", "arguments": {"plan": {"days": [{"day": 1, "activities": [{"type": "meal", "name": "x", "start": "25:00", "end": "26:00", "cost": -1}], "accommodation": None}], "total_cost": "many"}}},
    {"name": "submit_plan", "arguments": {"plan": {"days": "all of them", "total_cost": 0}}},
    {"name": "submit_plan", "arguments": {"plan": {"days": [], "total_cost": 0, "\u4e2d\u00e9\x00\x1b[31m": 1}}},
    '{"name": "get_route", "arguments": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"name": "search_trains", "arguments": {"origin": "a", "destination": "b", "date": NaN}}',
]


def test_hostile_tool_calls_give_readable_errors_never_exceptions():
    env = TravelPlanning(difficulty="easy", max_invalid=100, max_turns=100)
    env.reset(seed=0)
    for call in HOSTILE:
        observation, reward, terminated, truncated, info = _step(env, call)
        # An unbalanced brace inside a JSON string hides the box from the brace-matching parser: a format error.
        assert not terminated and (info["invalid_action"] or info["format_error"]), call
        assert isinstance(info["tool_error"], str), call
        assert info["tool_error"] and len(info["tool_error"]) < 1000 and info["tool_error"] in observation
        assert env.observation_space.contains(observation)
    # The readable parts: what is wrong and what is allowed.
    assert "unknown tool" in _step(env, HOSTILE[11])[4]["tool_error"] and "search_flights" in _step(env, HOSTILE[11])[0]
    assert "'stars'" in _step(env, HOSTILE[3])[4]["tool_error"]
    assert "at most 200" in _step(env, HOSTILE[1])[4]["tool_error"]
    assert "HH:MM" in _step(env, HOSTILE[16])[0]


def _plan_with(activity=None, stay=None, total=1) -> str:
    activity = activity if activity is not None else {"type": "meal", "name": "x", "start": "12:00", "end": "13:00", "cost": 1}
    day = {"day": 1, "activities": [activity], "accommodation": stay}
    return json.dumps({"name": "submit_plan", "arguments": {"plan": {"days": [day], "total_cost": total}}})


@pytest.mark.parametrize(
    "call, message",
    [
        (_plan_with({"type": []}), "activities[0].type must be one of"),  # raised TypeError: unhashable list
        (_plan_with({"type": {}}), "activities[0].type must be one of"),
        (_plan_with({"type": 3.5}), "activities[0].type must be one of"),
        (_plan_with(total=10**400), "total_cost must be a number"),  # raised OverflowError in math.isfinite
        (_plan_with(stay={"name": "H", "cost": 10**400}), "accommodation must be null or"),
        (_plan_with({"type": "meal", "name": "x", "start": "12:00", "end": "13:00", "cost": 10**400}), ".cost must be"),
        (_plan_with({"type": "move", "from": "a", "to": "b", "mode": ["taxi"], "start": "12:00", "end": "13:00",
                     "cost": 1}), ".mode must be"),
        (_plan_with({"type": "meal", "name": {"x": 1}, "start": [12], "end": "13:00", "cost": 1}), "name must be a non-empty string"),
    ],
    ids=["type-list", "type-object", "type-number", "huge-total", "huge-stay", "huge-cost", "mode-list", "name-object"],
)
def test_any_json_value_in_a_plan_is_a_readable_schema_error(call, message):
    env = TravelPlanning(difficulty="easy")
    env.reset(seed=0)
    observation, _, terminated, _, info = _step(env, call)
    assert info["invalid_action"] and not terminated and info["tool"] == "submit_plan"
    assert message in info["tool_error"] and info["tool_error"] in observation


def test_tools_reveal_hidden_facts_only_in_details():
    env = TravelPlanning(difficulty="medium")
    _, info = env.reset(seed=5)
    task, trip = info["task"], info["task"].trip
    sight = next(a for a in task.world.attractions if a.closed_weekday >= 0)
    listed = _step(env, {"name": "recommend_attractions", "arguments": {"city": trip.destination}})[0]
    detailed = _step(env, {"name": "get_attraction_details", "arguments": {"name": sight.name}})
    assert sight.name in listed and "closed" not in listed
    assert "closed on" in detailed[0] and detailed[4]["tool_result"]["min_visit"] == sight.min_visit
    flights = _step(env, {"name": "search_flights", "arguments": {"origin": trip.origin, "destination": trip.destination,
                                                                   "date": trip.dates[0]}})
    assert "seats" not in flights[0]
    number = flights[4]["tool_result"][0]["number"]
    details = _step(env, {"name": "get_transport_details", "arguments": {"number": number, "date": trip.dates[0]}})
    assert details[4]["tool_result"]["seats_left"] == task.world.transport(number, trip.dates[0]).seats
    route = _step(env, {"name": "get_route", "arguments": {"origin": sight.name, "destination": task.world.hotels[0].name}})
    expected = route_between(task.world.place(sight.name), task.world.place(task.world.hotels[0].name), trip.travellers)
    assert route[4]["tool_result"]["minutes"] == expected.minutes and route[4]["tool_result"]["cost"] == expected.cost


def test_reset_info_offers_openai_schemas_and_the_public_query():
    env = TravelPlanning(difficulty="easy")
    _, info = env.reset(seed=2)
    names = [tool["function"]["name"] for tool in info["tools"]]
    assert names[-1] == "submit_plan" and len(names) == 11
    assert all(t["type"] == "function" and t["function"]["parameters"]["type"] == "object" for t in info["tools"])
    public = json.dumps(info["query"])
    anchors = {dict(c.params).get("attraction") for c in info["task"].constraints}  # named by the request itself
    assert not any(name in public for c in info["task"].constraints for name in c.answer if name not in anchors)
    assert info["query"]["budget"] == info["task"].budget
    database = TravelPlanning(difficulty="easy", database_in_prompt=True)
    observation, info = database.reset(seed=2)
    assert [t["function"]["name"] for t in info["tools"]] == ["submit_plan"] and "database" in info
    assert all(a.name in observation for a in info["task"].world.attractions)
    assert all(t.number in observation and f"seats {t.seats}" in observation for t in info["task"].world.transports)
    largest = TravelPlanning(difficulty="medium", database_in_prompt=True)
    assert max(len(largest.reset(seed=s)[0]) for s in range(20)) < MAX_OBSERVATION_CHARS


def test_shaped_reward_pays_the_partial_score():
    env = TravelPlanning(difficulty="easy", shaped_reward=True)
    _, info = env.reset(seed=4)
    plan = _plant_cost(info["task"], json.loads(info["task"].witness))
    _, reward, terminated, _, info = _step(env, {"name": "submit_plan", "arguments": {"plan": plan}})
    assert terminated and not info["success"] and 0 < reward == info["partial_score"] < 1
    assert info["dimensions"]["cost_accuracy"] is False and "cost_accuracy: FAIL" in info["feedback"]


def _episode_scores(env_id, name, seeds, **kwargs):
    env = gym.make(env_id)
    scores = []
    for seed in seeds:
        agent = agents.baseline(name, env_id, **kwargs)
        agent.reset(seed=agent_seed(seed))
        observation, info = env.reset(seed=seed)
        while True:
            observation, _, terminated, _, info = env.step(agent.act(observation, info))
            if "composite" in info and info.get("episode_end", terminated):
                scores.append((info.get("episode_index", 0), info["case_acc"], info["commonsense"]))
            if terminated:
                break
    return scores


@pytest.mark.parametrize("env_id", ["icl/TravelPlanning-Easy-v0", "icl/TravelPlanning-Hard-v0", "icl/TravelPlanning-MediumDB-v0"])
def test_baselines_order(env_id):
    seeds = range(6)
    oracle = _episode_scores(env_id, "oracle", seeds)
    planner = _episode_scores(env_id, "planner", seeds)
    greedy = _episode_scores(env_id, "greedy", seeds)
    random = _episode_scores(env_id, "random", seeds)
    assert all(case == 1.0 for _, case, _ in oracle)
    assert np.mean([c for _, c, _ in planner]) >= 0.8
    assert np.mean([s for _, _, s in greedy]) >= 0.9 and np.mean([c for _, c, _ in greedy]) <= 0.5
    assert np.mean([s for _, _, s in random]) < 0.5 and not any(c for _, c, _ in random)


@pytest.mark.parametrize("env_id", ["icl/TravelPlanning-MetaPreference-v0", "icl/TravelPlanning-MetaQuirk-v0"])
def test_meta_variants_reward_memory(env_id):
    """The constraint-following planner fails the first episode on the hidden fact, then adapts only with memory."""
    seeds = range(5)
    remembered = _episode_scores(env_id, "planner", seeds, memory=True)
    forgetful = _episode_scores(env_id, "planner", seeds, memory=False)
    first = [case for episode, case, _ in remembered if episode == 0]
    later = [case for episode, case, _ in remembered if episode > 0]
    assert np.mean(first) <= 0.2 and np.mean(later) >= 0.8
    assert np.mean([case for episode, case, _ in forgetful if episode > 0]) <= 0.2
    assert all(case == 1.0 for _, case, _ in _episode_scores(env_id, "oracle", seeds))
