"""Shopping planning: the unique best cart by independent brute force, coupon arithmetic, scoring, hostile tools."""

from __future__ import annotations

import itertools
import json

import gymnasium as gym
import numpy as np
import pytest

import agents
import envs  # noqa: F401  (registers the ids)
from agents.rollout import agent_seed
from envs.planning.shopping import ShoppingPlanning
from envs.planning.shopping_world import CATEGORIES, Coupon, Product, cart_price, check_cart, generate_shopping_task


def _task(seed, difficulty, hidden=False):
    return generate_shopping_task(np.random.default_rng(seed), difficulty, hidden)


def _fits(product, requirement, user) -> bool:
    """The request as the query states it, written out independently of the env's matcher."""
    size = {"clothing": user.clothing_size, "shoes": user.shoe_size}.get(CATEGORIES[product.category][0], "one size")
    filters = dict(requirement.filters)
    return (
        product.category == requirement.category and product.gender in (user.gender, "unisex")
        and size in product.sizes and product.stock > 0
        and filters.get("brand", product.brand) == product.brand and filters.get("colour", product.colour) == product.colour
        and filters.get("season", product.season) == product.season
        and product.rating >= filters.get("min_rating", 0) and product.ship_days <= filters.get("max_ship_days", 99)
    )


def _price_with(products, coupons) -> int | None:
    """Same-brand coupons on their brand's subtotal, then one cross-store coupon on the rest; None if one cannot apply."""
    total = sum(p.price for p in products)
    brand_coupons = [c for c in coupons if c.brand]
    store = [c for c in coupons if not c.brand]
    if len(store) > 1 or len({c.brand for c in brand_coupons}) < len(brand_coupons):
        return None
    for coupon in brand_coupons:
        subtotal = sum(p.price for p in products if p.brand == coupon.brand)
        if subtotal < coupon.threshold:
            return None
        total -= (subtotal // coupon.threshold) * coupon.discount
    for coupon in store:
        if total < coupon.threshold:
            return None
        total -= (total // coupon.threshold) * coupon.discount
    return total


def _brute_force(task):
    """Every cart and its objective, best first (lower is better)."""
    candidates = [[p for p in task.catalog if _fits(p, r, task.user) and p.brand != task.avoid_brand] for r in task.requirements]
    rows = []
    for combo in itertools.product(*candidates):
        if task.level == 3:
            for size in range(len(task.user.coupons) + 1):
                for coupons in itertools.combinations(task.user.coupons, size):
                    price = _price_with(combo, coupons)
                    if price is not None:
                        rows.append(((price,), combo, coupons))
        else:
            price = sum(p.price for p in combo)
            if task.level == 2 and price > task.budget:
                continue
            key = (price,) if task.level == 1 else (-sum(p.rating for p in combo), price)
            rows.append((key, combo, ()))
    return sorted(rows, key=lambda row: row[0]), candidates


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_expected_cart_is_the_unique_brute_force_optimum(difficulty):
    changed = 0
    for seed in range(150):
        task = _task(seed, difficulty)
        rows, candidates = _brute_force(task)
        assert rows[0][0] < rows[1][0], f"seed {seed}: the best cart is tied"
        assert tuple(p.id for p in rows[0][1]) == task.answer
        assert tuple(sorted(c.id for c in rows[0][2])) == task.answer_coupons
        cheapest = tuple(min(c, key=lambda p: p.price).id for c in candidates)
        if difficulty == "medium":
            best_rated = min(itertools.product(*candidates), key=lambda combo: (-sum(p.rating for p in combo), sum(p.price for p in combo)))
            # The budget binds: neither the cheapest nor the best-rated cart is the answer.
            assert task.answer != cheapest and task.answer != tuple(p.id for p in best_rated)
            assert sum(task.product(pid).price for pid in task.answer) <= task.budget
        changed += task.answer != cheapest or bool(task.answer_coupons)
    assert difficulty == "easy" or changed >= 120


def test_coupon_stacking_by_hand():
    shoe = Product("P1", "a", "boots", "Northway", "black", "men", "winter", ("40",), 180, 40, 0, 5, 2)
    bag = Product("P2", "b", "backpack", "Pelican", "red", "unisex", "all-season", ("one size",), 120, 45, 0, 5, 2)
    brand = Coupon("B1", "Northway", 100, 20)
    store = Coupon("C1", "", 200, 30)
    # 300 total; Northway subtotal 180 holds one full 100 -> -20 = 280; 280 holds one full 200 -> -30 = 250.
    assert cart_price([shoe, bag], [brand, store]) == 250
    # Without the brand coupon: 300 holds one full 200 -> 270.
    assert cart_price([shoe, bag], [store]) == 270
    # The bag alone (120) does not reach the cross-store threshold; two cross-store coupons never stack.
    assert cart_price([bag], [store]) is None
    assert cart_price([shoe, bag], [store, Coupon("C2", "", 100, 5)]) is None
    assert cart_price([bag], [brand]) is None


def test_cart_scoring():
    task = next(t for t in (_task(seed, "hard") for seed in range(50)) if t.answer_coupons)
    full = {pid: 1 for pid in task.answer}
    assert check_cart(task, full, list(task.answer_coupons))["case_acc"] == 1.0
    partial = check_cart(task, dict(list(full.items())[:-1]), list(task.answer_coupons))
    assert partial["match_rate"] == pytest.approx((len(full) - 1) / len(full)) and partial["case_acc"] == 0.0
    extra_id = next(p.id for p in task.catalog if p.id not in full)
    extra = check_cart(task, {**full, extra_id: 1}, list(task.answer_coupons))
    assert extra["match_rate"] == 1.0 and extra["case_acc"] == 0.0 and extra_id in " ".join(extra["feedback"])
    assert check_cart(task, {**full, task.answer[0]: 2}, list(task.answer_coupons))["case_acc"] == 0.0
    assert check_cart(task, full, [])["case_acc"] == 0.0


def _step(env, call):
    return env.step("\\boxed{" + (call if isinstance(call, str) else json.dumps(call)) + "}")


HOSTILE = [
    {"name": "search_products", "arguments": {"category": "spaceship"}},
    {"name": "search_products", "arguments": {"max_price": -5}},
    {"name": "search_products", "arguments": {"keyword": "k" * 1000}},
    {"name": "search_products", "arguments": {"brand": ["Koru"]}},
    {"name": "get_product_details", "arguments": {"product_id": "P99999"}},
    {"name": "get_product_details", "arguments": {"product_id": {"$gt": ""}}},
    {"name": "add_to_cart", "arguments": {"product_id": "P0001", "quantity": 10**30}},
    {"name": "add_to_cart", "arguments": {"product_id": "P0001", "quantity": 1.5}},
    {"name": "add_coupon", "arguments": {"coupon_id": "FREE100"}},
    {"name": "remove_from_cart", "arguments": {"product_id": "P0001"}},
    {"name": "remove_coupon", "arguments": {"coupon_id": "C1"}},
    {"name": "get_cart", "arguments": {"verbose": True}},
    {"name": "__import__('os')"},
    '{"name": "get_cart", "arguments": "not json"}',
]


def test_hostile_tool_calls_give_readable_errors_never_exceptions():
    env = ShoppingPlanning(difficulty="hard", max_invalid=100)
    env.reset(seed=1)
    for call in HOSTILE:
        observation, _, terminated, _, info = _step(env, call)
        assert not terminated and info["invalid_action"] and info["tool_error"] in observation, call
        assert env.observation_space.contains(observation)
    assert "allowed:" in _step(env, HOSTILE[0])[4]["tool_error"]
    assert "no product" in _step(env, HOSTILE[4])[4]["tool_error"]


@pytest.mark.parametrize("number", ["1" + "0" * 400, "-1" + "0" * 400, "1e999", "NaN", "-Infinity"])
def test_numbers_beyond_float_range_are_a_tool_error(number):
    # Python's json decodes `1` followed by 400 zeros to an int that math.isfinite cannot convert: this step
    # raised OverflowError before the number check compared ints with the largest float instead.
    env = gym.make("icl/ShoppingPlanning-Easy-v0").unwrapped
    env.reset(seed=0)
    text = '\\boxed{{"name": "add_to_cart", "arguments": {"product_id": "P0001", "quantity": ' + number + "}}}"
    observation, _, terminated, _, info = env.step(text)
    assert info["invalid_action"] and not terminated
    assert "'quantity' must be a finite integer" in info["tool_error"] and len(observation) < 1000


def test_cart_tools_track_state_and_prices():
    env = ShoppingPlanning(difficulty="hard")
    _, info = env.reset(seed=2)
    task = info["task"]
    for pid in task.answer:
        assert not _step(env, {"name": "add_to_cart", "arguments": {"product_id": pid}})[4]["invalid_action"]
    for coupon in task.answer_coupons:
        _step(env, {"name": "add_coupon", "arguments": {"coupon_id": coupon}})
    cart = _step(env, {"name": "get_cart"})[4]["tool_result"]
    owned = {c.id: c for c in task.user.coupons}
    expected = cart_price([task.product(pid) for pid in task.answer], [owned[c] for c in task.answer_coupons])
    assert cart["total"] == expected and set(cart["products"]) == set(task.answer)
    scarce = next(p for p in task.catalog if 0 < p.stock < 10)
    assert "in stock" in _step(env, {"name": "add_to_cart", "arguments": {"product_id": scarce.id, "quantity": 10}})[4]["tool_error"]
    _, reward, terminated, _, info = _step(env, {"name": "submit_cart"})
    assert terminated and reward == 1.0 and info["case_acc"] == 1.0 and info["cart_total"] == expected


def _scores(env_id, name, seeds, **kwargs):
    env = gym.make(env_id)
    rows = []
    for seed in seeds:
        agent = agents.baseline(name, env_id, **kwargs)
        agent.reset(seed=agent_seed(seed))
        observation, info = env.reset(seed=seed)
        while True:
            observation, _, terminated, _, info = env.step(agent.act(observation, info))
            if "match_rate" in info and info.get("episode_end", terminated):
                rows.append((info.get("episode_index", 0), info["case_acc"], info["match_rate"], info["revealed"]))
            if terminated:
                break
    return rows


def test_baselines_per_level():
    seeds = range(8)
    for difficulty in ("Easy", "Medium", "Hard"):
        env_id = f"icl/ShoppingPlanning-{difficulty}-v0"
        assert all(case == 1.0 for _, case, _, _ in _scores(env_id, "oracle", seeds))
        assert np.mean([case for _, case, _, _ in _scores(env_id, "random", seeds)]) <= 0.25
    assert all(case == 1.0 for _, case, _, _ in _scores("icl/ShoppingPlanning-Easy-v0", "greedy", seeds))
    assert not any(case for _, case, _, _ in _scores("icl/ShoppingPlanning-Medium-v0", "greedy", seeds))


def test_meta_variant_rewards_memory():
    seeds = range(6)
    remembered = _scores("icl/ShoppingPlanning-Meta-v0", "greedy", seeds, memory=True)
    forgetful = _scores("icl/ShoppingPlanning-Meta-v0", "greedy", seeds, memory=False)
    assert not any(case for episode, case, _, _ in remembered if episode == 0)
    assert all(revealed.get("avoid_brand") for episode, _, _, revealed in remembered if episode == 0)
    assert all(case == 1.0 for episode, case, _, _ in remembered if episode > 0)
    assert not any(case for _, case, _, _ in forgetful)
