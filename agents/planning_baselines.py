"""Baselines for the planning envs: the witness oracle, tool-using greedy planners and random plans.

Each agent writes one JSON tool call per turn. The tool-using ones run a script as a Python generator
that yields calls and receives each call's structured result (`info["tool_result"]`, documented by the
envs), then builds the plan with the same scheduler the task generator uses. With `memory=True` they
keep what `submit_plan`'s feedback revealed (`info["revealed"]`) for the next episodes of a trial.
"""

from __future__ import annotations

import json
from typing import Generator

import numpy as np

from envs.planning.shopping_world import CATEGORIES, Coupon, Product, cart_price
from envs.planning.tools import ToolError
from envs.planning.travel_schedule import Preferences, choose_cheapest, schedule_trip
from envs.planning.travel_tools import TravelTools
from envs.planning.travel_world import WEEKDAYS, Attraction, Hotel, Restaurant, Transport, Trip, clock, parse_clock

__all__ = [
    "PlanningAgent",
    "TravelOracle",
    "TravelGreedy",
    "TravelPlanner",
    "TravelRandom",
    "ShoppingOracle",
    "ShoppingGreedy",
    "ShoppingRandom",
    "TRAVEL_BASELINES",
    "SHOPPING_BASELINES",
]

Script = Generator[dict, object, None]


def _call(tool: str, /, **arguments) -> dict:
    return {"name": tool, "arguments": arguments}


class PlanningAgent:
    """Drives one script per episode and carries revealed facts across episodes when `memory=True`.

    Args:
        memory: keep revealed hidden facts for the later episodes of a trial.
        seed: seed of the agent's own generator.
    """

    def __init__(self, memory: bool = True, seed: int | None = 0):
        self.memory = bool(memory)
        self.rng = np.random.default_rng(seed)
        self.learned: dict = {}
        self._script: Script | None = None

    def reset(self, seed: int | None = None) -> None:
        """Start a new trial: forget everything learned; `seed` re-seeds the generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.learned, self._script = {}, None

    #: What to send when the script has nothing left to do (it ends the episode).
    final_call = {"name": "submit_plan", "arguments": {"plan": {}}}

    def act(self, observation: str, info: dict) -> str:
        """The next tool call as `\\boxed{{...}}`."""
        if info.get("revealed"):
            self.learned.update(info["revealed"])
        try:
            if "query" in info:
                # Reset info (or the opening of a trial's next episode): a new script starts.
                if not self.memory:
                    self.learned = {}
                self._script = self.script(info)
                call = next(self._script)
            else:
                call = self._script.send(info.get("tool_result")) if self._script else None
            offered = {tool["function"]["name"] for tool in info.get("tools", [])}
            runner = self.local_tools(info)
            while call is not None and offered and call["name"] not in offered and runner is not None:
                # Database-in-prompt mode: answer the script's lookups from the database in `info`.
                call = self._script.send(runner(call))
        except StopIteration:
            call = None
        call = call or self.final_call
        return "\\boxed{" + json.dumps(call) + "}"

    def script(self, info: dict) -> Script:
        """The episode's tool calls: yields calls, receives each call's `tool_result` (None on error)."""
        raise NotImplementedError

    def local_tools(self, info: dict):
        """A function answering tool calls locally when the env lists its database in `info`, else None."""
        if "database" not in info or "query" not in info:
            return None
        query = info["query"]
        trip = Trip(query["origin"], query["destination"], tuple(query["dates"]),
                    tuple(WEEKDAYS.index(w) for w in query["weekdays"]), query["travellers"])
        tools = TravelTools(info["database"], trip)

        def run(call: dict):
            try:
                return tools.run(call["name"], call.get("arguments", {}))[1]
            except ToolError:
                return None

        return run


# ----------------------------------------------------------------------------- travel
class TravelOracle(PlanningAgent):
    """Submits the task's witness plan (reads `info["task"]`; it knows the hidden facts too)."""

    def script(self, info: dict) -> Script:
        yield _call("submit_plan", plan=json.loads(info["task"].witness))


def _minutes(text) -> int:
    value = parse_clock(text)
    return 0 if value is None else value


def _transport(row: dict) -> Transport:
    return Transport(row["number"], row["mode"], row["origin"], row["destination"], row["date"], _minutes(row["depart"]),
                     _minutes(row["arrive"]), row["seat_class"], row["price"], row.get("seats_left", 0), row["stops"])


def _decikm(row: dict) -> tuple[int, int]:
    return int(round(row["x"] * 10)), int(round(row["y"] * 10))


class TravelGreedy(PlanningAgent):
    """Cheapest everything: cheapest transports with seats, hotel, attractions and restaurants.

    It respects the rules it can learn through the tools (hours, closing days, seats) but not the
    request's hard constraints, so it mostly passes the commonsense dimensions and fails the
    personalized score. `TravelPlanner` is the same planner following the constraints.

    Args:
        memory: keep revealed hidden facts across the episodes of a trial.
        seed: seed of the agent's generator.
        follow_constraints: meet the request's hard constraints (TravelPlanner sets it).
    """

    follow_constraints = False

    def _pick_leg(self, rows, kind_params, outbound: bool):
        """Candidate legs in the order to try: the constraint's choice, else cheapest convenient first."""
        if outbound and "cheapest_direct_flight" in kind_params:
            return choose_cheapest([r for r in rows if r["mode"] == "flight" and r["stops"] == 0], lambda r: r["price"])
        if not outbound and "return_train_window" in kind_params:
            window = kind_params["return_train_window"]
            low, high = _minutes(window["earliest"]), _minutes(window["latest"])
            return [r for r in rows if r["mode"] == "train" and low <= _minutes(r["depart"]) <= high]
        # Convenient legs first (a day in town), then ones that still leave time to reach the hotel or station.
        if outbound:
            rank = lambda r: 0 if _minutes(r["arrive"]) <= 14 * 60 else 1 if _minutes(r["arrive"]) <= 21 * 60 else 2  # noqa: E731
        else:
            rank = lambda r: 0 if _minutes(r["depart"]) >= 15 * 60 else 1 if _minutes(r["depart"]) >= 10 * 60 else 2  # noqa: E731
        return sorted(rows, key=lambda r: (rank(r), r["price"], r["number"]))

    def _choose_leg(self, rows, kind_params, outbound, travellers) -> Script:
        for row in self._pick_leg(rows, kind_params, outbound)[:8]:
            details = yield _call("get_transport_details", number=row["number"], date=row["date"])
            if details and details["seats_left"] >= travellers:
                return details
        return None

    def _choose_hotel(self, hotels, kind_params):
        if "hotel_top_rated_star" in kind_params:
            stars = kind_params["hotel_top_rated_star"]["stars"]
            hotels = sorted((h for h in hotels if h["stars"] == stars), key=lambda h: (-h["rating"], h["name"]))
        elif "hotel_cheapest_brand" in kind_params:
            brand = kind_params["hotel_cheapest_brand"]["brand"]
            hotels = sorted((h for h in hotels if h["brand"] == brand), key=lambda h: (h["price"], h["name"]))
        else:
            stars = self.learned.get("min_hotel_stars", 0)
            hotels = sorted((h for h in hotels if h["stars"] >= stars), key=lambda h: (h["price"], h["name"]))
        return hotels[0] if hotels else None

    def _required_attractions(self, attractions, kind_params) -> list[str]:
        required = []
        if "free_attractions_of_type" in kind_params:
            kind = kind_params["free_attractions_of_type"]["type"]
            required += [a["name"] for a in attractions if a["type"] == kind and a["price"] == 0]
        if "top_rated_of_type" in kind_params:
            kind = kind_params["top_rated_of_type"]["type"]
            best = sorted((a for a in attractions if a["type"] == kind), key=lambda a: (-a["rating"], a["name"]))
            required += [best[0]["name"]] if best and best[0]["name"] not in required else []
        return required

    def _preferences(self, required, restaurant) -> Preferences:
        closed = self.learned.get("closed")
        return Preferences(
            required_attractions=tuple(required), required_restaurant=restaurant,
            avoid_cuisines=(self.learned["avoid_cuisine"],) if "avoid_cuisine" in self.learned else (),
            closed=((closed["type"], WEEKDAYS.index(closed["weekday"])),) if closed else (),
            surcharge="evening_surcharge" in self.learned,
        )

    def script(self, info: dict) -> Script:
        query = info["query"]
        origin, destination, dates, travellers = query["origin"], query["destination"], query["dates"], query["travellers"]
        kind_params = {c["kind"]: c["params"] for c in query["constraints"]} if self.follow_constraints else {}
        legs = []
        for source, target, date in ((origin, destination, dates[0]), (destination, origin, dates[-1])):
            rows = []
            for tool in ("search_flights", "search_trains"):
                rows += (yield _call(tool, origin=source, destination=target, date=date)) or []
            legs.append(rows)
        outbound = yield from self._choose_leg(legs[0], kind_params, True, travellers)
        inbound = yield from self._choose_leg(legs[1], kind_params, False, travellers)
        hotel = self._choose_hotel((yield _call("search_hotels", city=destination)) or [], kind_params)
        if outbound is None or inbound is None or hotel is None:
            return
        attractions = (yield _call("recommend_attractions", city=destination)) or []
        required = self._required_attractions(attractions, kind_params)
        restaurants = (yield _call("recommend_restaurants", near=hotel["name"], max_km=50)) or []
        restaurant = ""
        if "restaurant_cuisine_near" in kind_params:
            params = kind_params["restaurant_cuisine_near"]
            near = (yield _call("recommend_restaurants", near=params["attraction"], cuisine=params["cuisine"], max_km=2)) or []
            near = sorted(near, key=lambda r: (-r["rating"], r["name"]))
            restaurant = near[0]["name"] if near else ""
        avoid = self.learned.get("avoid_cuisine")
        wanted_attractions = required + [a["name"] for a in choose_cheapest_rows(attractions) if a["name"] not in required]
        wanted_restaurants = ([restaurant] if restaurant else []) + [
            r["name"] for r in choose_cheapest_rows(restaurants) if r["name"] != restaurant and r["cuisine"] != avoid]
        places = {hotel["name"]: _decikm(hotel)}
        for details in (outbound, inbound):
            spot = yield _call("search_location", name=details["station"])
            if spot:
                places[details["station"]] = _decikm(spot)
        known_attractions, known_restaurants = [], []
        trip = Trip(origin, destination, tuple(dates), tuple(WEEKDAYS.index(w) for w in query["weekdays"]), travellers)
        prefs = self._preferences(required, restaurant)
        plan = None
        for round_size in (len(dates) + 2 + len(required), len(dates) * 2 + 4 + len(required)):
            for name in wanted_attractions[len(known_attractions):round_size]:
                row = yield _call("get_attraction_details", name=name)
                if row:
                    known_attractions.append(Attraction(
                        row["name"], row["type"], row["rating"], row["price"], _minutes(row["open"]), _minutes(row["close"]),
                        WEEKDAYS.index(row["closed_weekday"]) if row["closed_weekday"] else -1, row["min_visit"],
                        row["max_visit"], *_decikm(row)))
            for name in wanted_restaurants[len(known_restaurants):round_size + len(dates)]:
                row = yield _call("get_restaurant_details", name=name)
                if row:
                    known_restaurants.append(Restaurant(row["name"], row["cuisine"], row["price"], row["rating"],
                                                        _minutes(row["open"]), _minutes(row["close"]), *_decikm(row)))
            for item in known_attractions + known_restaurants:
                places[item.name] = (item.x, item.y)
            hotel_record = Hotel(hotel["name"], hotel["brand"], hotel["stars"], hotel["price"], hotel["rating"], *_decikm(hotel))
            plan = schedule_trip(trip, _transport(outbound), _transport(inbound), hotel_record,
                                 choose_cheapest(known_attractions, lambda a: a.price), choose_cheapest(known_restaurants, lambda r: r.price),
                                 places, prefs)
            if plan is not None:
                break
        if plan is not None:
            yield _call("submit_plan", plan=plan)


def choose_cheapest_rows(rows: list[dict]) -> list[dict]:
    """Tool-result rows sorted by price then name."""
    return sorted(rows, key=lambda row: (row["price"], row["name"]))


class TravelPlanner(TravelGreedy):
    """The greedy planner that also meets the request's hard constraints (found through the tools).

    In the meta variants, with `memory=True`, it fails the first episode on the hidden fact and then
    plans around what the feedback revealed; with `memory=False` it repeats the mistake.
    """

    follow_constraints = True


class TravelRandom(PlanningAgent):
    """A random, schema-valid plan from the records a few searches return."""

    def script(self, info: dict) -> Script:
        query = info["query"]
        origin, destination, dates, n = query["origin"], query["destination"], query["dates"], query["travellers"]
        out_rows = ((yield _call("search_flights", origin=origin, destination=destination, date=dates[0])) or []) + (
            (yield _call("search_trains", origin=origin, destination=destination, date=dates[0])) or [])
        back_rows = ((yield _call("search_trains", origin=destination, destination=origin, date=dates[-1])) or []) + (
            (yield _call("search_flights", origin=destination, destination=origin, date=dates[-1])) or [])
        hotels = (yield _call("search_hotels", city=destination)) or []
        attractions = (yield _call("recommend_attractions", city=destination)) or []
        if not (out_rows and back_rows and hotels):
            return
        restaurants = (yield _call("recommend_restaurants", near=hotels[0]["name"], max_km=50)) or []
        pick = lambda rows: rows[int(self.rng.integers(len(rows)))]  # noqa: E731
        hotel = pick(hotels)
        places = [a["name"] for a in attractions] + [r["name"] for r in restaurants]
        days = []
        for index in range(len(dates)):
            activities, now, here = [], 8 * 60, hotel["name"]
            if index == 0:
                leg = pick(out_rows)
                activities.append({"type": "intercity", "number": leg["number"], "from": origin, "to": destination,
                                   "start": leg["depart"], "end": leg["arrive"], "cost": leg["price"] * n})
                now = max(now, _minutes(leg["arrive"]))
            for _ in range(int(self.rng.integers(0, 4))):
                if not places or now > 20 * 60:
                    break
                target = pick(places)
                travel, stay = int(self.rng.integers(5, 40)), int(self.rng.integers(30, 150))
                activities.append({"type": "move", "from": here, "to": target, "mode": pick(["walk", "taxi"]),
                                   "start": clock(now), "end": clock(now + travel), "cost": int(self.rng.integers(0, 40))})
                kind = "attraction" if target in {a["name"] for a in attractions} else "meal"
                activities.append({"type": kind, "name": target, "start": clock(now + travel),
                                   "end": clock(min(now + travel + stay, 23 * 60)), "cost": int(self.rng.integers(0, 200))})
                now, here = min(now + travel + stay, 23 * 60), target
            if index == len(dates) - 1:
                leg = pick(back_rows)
                activities.append({"type": "intercity", "number": leg["number"], "from": destination, "to": origin,
                                   "start": leg["depart"], "end": leg["arrive"], "cost": leg["price"] * n})
            stay = None if index == len(dates) - 1 else {"name": hotel["name"], "cost": hotel["price"]}
            days.append({"day": index + 1, "activities": activities, "accommodation": stay})
        total = sum(a["cost"] for d in days for a in d["activities"]) + sum(d["accommodation"]["cost"] for d in days[:-1])
        yield _call("submit_plan", plan={"days": days, "total_cost": total})


# ----------------------------------------------------------------------------- shopping
class ShoppingOracle(PlanningAgent):
    """Puts the task's best cart and coupons in the cart and submits (reads `info["task"]`)."""

    final_call = {"name": "submit_cart"}

    def script(self, info: dict) -> Script:
        task = info["task"]
        for product_id in task.answer:
            yield _call("add_to_cart", product_id=product_id)
        for coupon_id in task.answer_coupons:
            yield _call("add_coupon", coupon_id=coupon_id)
        yield _call("submit_cart")


def _fits(details: dict, filters: dict, user: dict, size: str) -> bool:
    if details["gender"] not in (user["gender"], "unisex") or size not in details["sizes"] or details["stock"] < 1:
        return False
    for key, value in filters.items():
        if key == "min_rating" and details["rating"] * 10 < value - 1e-9:
            return False
        if key == "max_ship_days" and details["ship_days"] > value:
            return False
        if key in ("brand", "colour", "season") and details[key] != value:
            return False
    return True


class ShoppingGreedy(PlanningAgent):
    """The cheapest fitting product per item (checked with the detail tool), then the best coupons for that cart.

    Exact at level 1; at level 2 it ignores the rating objective and at level 3 the coupon interplay
    between items. With `memory=True` it avoids a brand the feedback said the shopper refuses.
    """

    final_call = {"name": "submit_cart"}

    def script(self, info: dict) -> Script:
        user = (yield _call("get_user_info")) or {}
        if not user:
            return
        chosen: list[dict] = []
        for requirement in info["query"]["requirements"]:
            category = requirement["category"]
            system = CATEGORIES[category][0]
            size = {"clothing": user["clothing_size"], "shoes": user["shoe_size"]}.get(system, "one size")
            rows = (yield _call("search_products", category=category, size=size, sort_by="price")) or []
            for row in rows:
                if row["brand"] == self.learned.get("avoid_brand"):
                    continue
                details = yield _call("get_product_details", product_id=row["id"])
                if details and _fits(details, requirement["filters"], user, size):
                    chosen.append(details)
                    break
        for product in chosen:
            yield _call("add_to_cart", product_id=product["id"])
        for coupon in self._best_coupons(chosen, user.get("coupons", [])):
            yield _call("add_coupon", coupon_id=coupon)
        yield _call("submit_cart")

    @staticmethod
    def _best_coupons(chosen: list[dict], owned: list[dict]) -> list[str]:
        products = [Product(p["id"], p["name"], p["category"], p["brand"], p["colour"], p["gender"], p["season"],
                            tuple(p["sizes"]), p["price"], int(round(p["rating"] * 10)), p["sales"], p["stock"], p["ship_days"])
                    for p in chosen]
        coupons = [Coupon(c["id"], c["brand"] or "", c["threshold"], c["discount"]) for c in owned]
        best, best_price = [], cart_price(products, [])
        for mask in range(1, 2 ** len(coupons)):
            subset = [c for bit, c in enumerate(coupons) if mask >> bit & 1]
            price = cart_price(products, subset)
            if price is not None and (best_price is None or price < best_price):
                best, best_price = [c.id for c in subset], price
        return best


class ShoppingRandom(PlanningAgent):
    """One random search result per requested category, no coupons."""

    final_call = {"name": "submit_cart"}

    def script(self, info: dict) -> Script:
        picks = []
        for requirement in info["query"]["requirements"]:
            rows = (yield _call("search_products", category=requirement["category"])) or []
            if rows:
                picks.append(rows[int(self.rng.integers(len(rows)))]["id"])
        for product_id in picks:
            yield _call("add_to_cart", product_id=product_id)
        yield _call("submit_cart")


TRAVEL_BASELINES = {"oracle": TravelOracle, "greedy": TravelGreedy, "planner": TravelPlanner, "random": TravelRandom}
SHOPPING_BASELINES = {"oracle": ShoppingOracle, "greedy": ShoppingGreedy, "random": ShoppingRandom}
