"""Shopping tasks: a seeded catalog and user, item requirements, the exact optimal cart and the cart checker.

Levels follow DeepPlanning's shopping domain (arXiv 2601.18137): level 1 asks for the cheapest product
matching each requirement, level 2 for the best-rated cart within a budget, level 3 for the cheapest
cart after coupons (same-brand coupons first, then one cross-store coupon on the remainder). The
optimum is found by brute force over every combination of matching products and coupons; instances
whose optimum is tied are rejected, so the expected cart is unique.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from envs.planning.travel_world import names

__all__ = [
    "CATEGORIES",
    "BRANDS",
    "COLOURS",
    "SEASONS",
    "ShoppingTier",
    "SHOPPING_TIERS",
    "Product",
    "Coupon",
    "User",
    "Requirement",
    "ShoppingTask",
    "matches",
    "cart_price",
    "best_carts",
    "generate_shopping_task",
    "check_cart",
]

# category -> (size system, price range); sizes come from the user profile ("in my size").
CATEGORIES = {
    "t-shirt": ("clothing", (20, 120)),
    "jeans": ("clothing", (40, 200)),
    "hoodie": ("clothing", (40, 180)),
    "jacket": ("clothing", (80, 400)),
    "sneakers": ("shoes", (50, 250)),
    "boots": ("shoes", (80, 350)),
    "backpack": ("none", (30, 200)),
    "watch": ("none", (60, 500)),
}
_SIZES = {"clothing": ("S", "M", "L", "XL"), "shoes": tuple(str(s) for s in range(38, 46)), "none": ("one size",)}
BRANDS = ("Northway", "Pelican", "Arcadia", "Bluefin", "Corvid", "Dunmore", "Everfield", "Koru")
COLOURS = ("black", "white", "navy", "red", "green", "grey", "beige", "blue")
SEASONS = ("spring", "summer", "autumn", "winter", "all-season")
_GENDERS = ("men", "women", "unisex")
_ADJECTIVES = ("Classic", "Urban", "Trail", "Lite", "Pro", "Everyday", "Vintage", "Active", "Cozy", "Sleek")


@dataclass(frozen=True)
class ShoppingTier:
    """Sizes of one level: catalog size, items, candidates per item, coupons and the turn cap."""

    level: int
    products: int
    items: int
    candidates: tuple[int, int]
    max_turns: int


SHOPPING_TIERS = {
    "easy": ShoppingTier(1, 60, 2, (2, 6), 30),
    "medium": ShoppingTier(2, 100, 3, (2, 4), 40),
    "hard": ShoppingTier(3, 140, 3, (2, 4), 50),
}


class Product(NamedTuple):
    """A catalog entry; `rating` is in tenths (35 = 3.5) so sums compare exactly (a named tuple: cheap to build)."""

    id: str
    name: str
    category: str
    brand: str
    colour: str
    gender: str
    season: str
    sizes: tuple[str, ...]
    price: int
    rating: int
    sales: int
    stock: int
    ship_days: int


@dataclass(frozen=True)
class Coupon:
    """`discount` off every full `threshold` of the cart (`brand` == "") or of one brand's subtotal."""

    id: str
    brand: str
    threshold: int
    discount: int

    def describe(self) -> str:
        scope = f"{self.brand} items" if self.brand else "the whole cart (cross-store)"
        return f"{self.id}: {self.discount} off every {self.threshold} spent on {scope}"


@dataclass(frozen=True)
class User:
    """The shopper's profile, as `get_user_info` shows it."""

    name: str
    gender: str
    clothing_size: str
    shoe_size: str
    coupons: tuple[Coupon, ...]

    def size_for(self, category: str) -> str:
        system = CATEGORIES[category][0]
        return {"clothing": self.clothing_size, "shoes": self.shoe_size}.get(system, "one size")


@dataclass(frozen=True)
class Requirement:
    """One requested item: its category and extra attribute filters (key, value)."""

    category: str
    filters: tuple[tuple[str, object], ...]
    text: str


@dataclass(frozen=True)
class ShoppingTask:
    """A shopping task: catalog, user, requests, budget (0 = none), the unique best cart and its coupons."""

    level: int
    catalog: tuple[Product, ...]
    user: User
    requirements: tuple[Requirement, ...]
    budget: int
    answer: tuple[str, ...]
    answer_coupons: tuple[str, ...]
    avoid_brand: str
    query: str

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.catalog if p.id == product_id), None)


def matches(product: Product, requirement: Requirement, user: User) -> bool:
    """Whether `product` meets `requirement` for `user` (gender, size, stock and the filters)."""
    if product.category != requirement.category or product.gender not in (user.gender, "unisex"):
        return False
    if user.size_for(product.category) not in product.sizes or product.stock < 1:
        return False
    for key, value in requirement.filters:
        if key == "min_rating" and product.rating < value:
            return False
        if key == "max_ship_days" and product.ship_days > value:
            return False
        if key in ("brand", "colour", "season") and getattr(product, key) != value:
            return False
    return True


def cart_price(products, coupons) -> int | None:
    """Final price of products (qty 1 each) with `coupons`; None when a coupon cannot apply.

    Same-brand coupons come first, on their brand's subtotal; one cross-store coupon then applies to
    what remains. A coupon that gives nothing (threshold unmet), a second coupon of one brand, or a
    second cross-store coupon makes the cart invalid.
    """
    total = sum(p.price for p in products)
    seen_brands, store = set(), [c for c in coupons if not c.brand]
    if len(store) > 1:
        return None
    for coupon in coupons:
        if not coupon.brand:
            continue
        subtotal = sum(p.price for p in products if p.brand == coupon.brand)
        if coupon.brand in seen_brands or subtotal < coupon.threshold:
            return None
        seen_brands.add(coupon.brand)
        total -= subtotal // coupon.threshold * coupon.discount
    for coupon in store:
        if total < coupon.threshold:
            return None
        total -= total // coupon.threshold * coupon.discount
    return total


def _coupon_options(products, coupons):
    """Every valid coupon subset for a product combination (at most one per brand, one cross-store)."""
    brands = {p.brand for p in products}
    per_brand = [[None] + [c for c in coupons if c.brand == b] for b in sorted(brands)]
    store = [None] + [c for c in coupons if not c.brand]
    for chosen in itertools.product(*per_brand, store):
        yield tuple(c for c in chosen if c is not None)


def best_carts(level: int, candidates, coupons=(), budget: int = 0) -> list[tuple[tuple, tuple, tuple]]:
    """All carts ranked best first, as (score, products, coupons); equal scores mean a tie.

    Level 1 and 3 minimise the final price; level 2 maximises the summed rating among carts within
    `budget`, then prefers the cheaper. Brute force: at most a few thousand combinations.
    """
    ranked = []
    for combo in itertools.product(*candidates):
        if level == 3:
            for chosen in _coupon_options(combo, coupons):
                price = cart_price(combo, chosen)
                if price is not None:
                    ranked.append(((price,), combo, chosen))
        else:
            price = sum(p.price for p in combo)
            if level == 2 and price > budget:
                continue
            score = (price,) if level == 1 else (-sum(p.rating for p in combo), price)
            ranked.append((score, combo, ()))
    ranked.sort(key=lambda row: row[0])
    return ranked


def _catalog(rng, count: int) -> list[Product]:
    categories = list(CATEGORIES)
    # One uniform matrix for every attribute: numpy's per-call overhead dominated generation time.
    u = rng.random((count, 20))
    ints = lambda column, low, high: (low + (u[:, column] * (high - low)).astype(np.int64)).tolist()  # noqa: E731
    brands, adjectives, colours = ints(0, 0, len(BRANDS)), ints(1, 0, len(_ADJECTIVES)), ints(2, 0, len(COLOURS))
    genders, seasons, ratings, sales = ints(3, 0, 3), ints(4, 0, len(SEASONS)), ints(5, 30, 51), ints(6, 0, 5000)
    stock, ship, unit = ints(7, 1, 30), ints(8, 1, 8), u[:, 9].tolist()
    models = ints(10, 100, 1000)
    in_stock = (u[:, 19] < 0.9).tolist()
    keep = (u[:, 11:19] < 0.7).tolist()  # each of up to 8 sizes is offered with probability 0.7
    result = []
    for index in range(count):
        category = categories[index % len(categories)]
        system, (low, high) = CATEGORIES[category]
        sizes = _SIZES[system]
        offered = tuple(size for k, size in enumerate(sizes) if keep[index][k]) or sizes[:1]
        brand = BRANDS[brands[index]]
        result.append(Product(
            f"P{index + 1:04d}", f"{brand} {_ADJECTIVES[adjectives[index]]} {category} {brand[0]}{models[index]}", category, brand,
            COLOURS[colours[index]], _GENDERS[genders[index]], SEASONS[seasons[index]], offered,
            int(low + unit[index] * (high - low)), ratings[index], sales[index], stock[index] if in_stock[index] else 0,
            ship[index],
        ))
    return result


_FILTER_WORDS = {
    "brand": lambda v: f"from {v}", "colour": lambda v: f"in {v}", "season": lambda v: f"for {v}",
    "min_rating": lambda v: f"rated at least {v / 10:.1f}", "max_ship_days": lambda v: f"delivered within {v} day" + ("s" if v != 1 else ""),
}
_ARTICLES = {"jeans": "a pair of jeans", "sneakers": "a pair of sneakers", "boots": "a pair of boots"}


def _requirement(rng, catalog, user: User, category: str, sizes: tuple[int, int]) -> tuple[Requirement, list] | None:
    """A requirement built around a fitting target product, with `sizes` matching products; None if none found."""
    plain = Requirement(category, (), "")
    fitting = [p for p in catalog if matches(p, plain, user)]
    if len(fitting) < sizes[0]:
        return None
    for _ in range(12):
        target = fitting[int(rng.integers(len(fitting)))]
        keys = [str(k) for k in rng.permutation(list(_FILTER_WORDS))[: int(rng.integers(0, 3))]]
        filters = []
        for key in keys:
            if key == "min_rating":
                filters.append((key, int(max(30, target.rating - int(rng.integers(0, 6))))))
            elif key == "max_ship_days":
                filters.append((key, int(target.ship_days + int(rng.integers(0, 3)))))
            else:
                filters.append((key, getattr(target, key)))
        detail = ", ".join(_FILTER_WORDS[k](v) for k, v in filters)
        sized = " in my size" if CATEGORIES[category][0] != "none" else ""
        text = f"{_ARTICLES.get(category, 'a ' + category)}{sized}" + (f", {detail}" if detail else "") + ", in stock"
        requirement = Requirement(category, tuple(filters), text)
        candidates = [p for p in fitting if matches(p, requirement, user)]
        if sizes[0] <= len(candidates) <= sizes[1]:
            return requirement, candidates
    return None


def _coupons(rng, catalog, level: int) -> tuple[Coupon, ...]:
    if level < 3:
        return ()
    coupons = []
    for index in range(int(rng.integers(1, 3))):
        threshold = int(rng.choice([200, 300, 400, 500]))
        coupons.append(Coupon(f"C{index + 1}", "", threshold, threshold // 10 * int(rng.integers(1, 3))))
    brands = rng.permutation(BRANDS)[: int(rng.integers(1, 4))]
    for index, brand in enumerate(brands):
        threshold = int(rng.choice([100, 150, 200, 250]))
        coupons.append(Coupon(f"B{index + 1}", str(brand), threshold, threshold // 10 * int(rng.integers(1, 4))))
    return tuple(coupons)


def generate_shopping_task(rng: np.random.Generator, difficulty: str = "easy", hidden: bool = False) -> ShoppingTask:
    """Draw a shopping task with a unique best cart.

    Args:
        rng: the env's generator.
        difficulty: "easy" (level 1), "medium" (level 2) or "hard" (level 3).
        hidden: the meta variant: the user silently refuses one brand that the naive best cart uses.

    Returns:
        The task.

    Raises:
        ValueError: on an unknown difficulty.
        RuntimeError: if no untied task was found in 300 draws.
    """
    if difficulty not in SHOPPING_TIERS:
        raise ValueError(f"difficulty={difficulty!r}; allowed: {sorted(SHOPPING_TIERS)}")
    tier = SHOPPING_TIERS[difficulty]
    for attempt in range(300):
        if attempt % 4 == 0:
            # A new catalog every fourth draw; in between only the shopper and the request change.
            catalog = _catalog(rng, tier.products)
        task = _draw_task(rng, tier, catalog, hidden)
        if task is not None:
            return task
    raise RuntimeError(f"no untied {difficulty} shopping task in 300 draws")


def _draw_task(rng, tier: ShoppingTier, catalog: list[Product], hidden: bool) -> ShoppingTask | None:
    """One shopper and request over `catalog`, or None when the best cart is tied or trivial."""
    user = User(names(rng, 1, set())[0], ("men", "women")[int(rng.integers(2))], _SIZES["clothing"][int(rng.integers(4))],
                _SIZES["shoes"][int(rng.integers(8))], _coupons(rng, catalog, tier.level))
    categories = [str(c) for c in rng.permutation(list(CATEGORIES))[: tier.items]]
    drawn = [_requirement(rng, catalog, user, c, tier.candidates) for c in categories]
    if any(d is None for d in drawn):
        return None
    requirements = tuple(d[0] for d in drawn)
    candidates = [d[1] for d in drawn]
    avoid = ""
    if hidden:
        naive = best_carts(1, candidates)
        avoid = naive[0][1][int(rng.integers(len(naive[0][1])))].brand
        candidates = [[p for p in c if p.brand != avoid] for c in candidates]
        if any(not c for c in candidates):
            return None
    budget = _budget(rng, candidates) if tier.level == 2 else 0
    if budget is None:
        return None
    ranked = best_carts(tier.level, candidates, user.coupons, budget)
    if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
        return None
    cheapest = best_carts(1, candidates)[0][1]
    if tier.level == 3 and ranked[0][1] == cheapest and not ranked[0][2] and rng.random() < 0.8:
        return None  # mostly keep level-3 instances where the coupons matter
    _, products, coupons = ranked[0]
    return ShoppingTask(tier.level, tuple(catalog), user, requirements, budget, tuple(p.id for p in products),
                        tuple(sorted(c.id for c in coupons)), avoid, _query(user, requirements, budget, tier.level))


def _budget(rng, candidates) -> int | None:
    """A level-2 budget whose best cart is unique and differs from both the cheapest and the best-rated."""
    combos = sorted(
        ((sum(p.price for p in combo), -sum(p.rating for p in combo), combo) for combo in itertools.product(*candidates)),
        key=lambda row: row[:2],
    )
    cheapest = combos[0][2]
    best_rated = min(combos, key=lambda row: (row[1], row[0]))[2]
    options, best = [], None
    for index, (price, negative_rating, combo) in enumerate(combos):
        # Sweeping budgets upwards: the best cart within `price` is the best of the prefix.
        if best is None or (negative_rating, price) < best[:2]:
            best = (negative_rating, price, combo)
        last_at_price = index + 1 == len(combos) or combos[index + 1][0] > price
        if not last_at_price:
            continue
        ties = [row for row in combos[: index + 1] if (row[1], row[0]) == best[:2]]
        if len(ties) == 1 and best[2] not in (cheapest, best_rated):
            options.append(price)
    return int(options[int(rng.integers(len(options)))]) if options else None


def _query(user: User, requirements, budget: int, level: int) -> str:
    lines = [f"Hi, I am {user.name}. Please put these in my cart:"]
    lines += [f"{index}. {r.text}" for index, r in enumerate(requirements, 1)]
    if level == 1:
        lines.append("For each item choose the cheapest product that fits.")
    elif level == 2:
        lines.append(f"The cart must cost at most {budget} in total; within that, get the highest total rating "
                     "(the sum of the items' ratings), and the lower price if two carts tie on rating.")
    else:
        lines.append("Use my coupons to pay as little as possible for the whole cart (add them to the cart).")
    lines.append("Submit the cart when it is ready.")
    return "\n".join(lines)


def check_cart(task: ShoppingTask, cart: dict[str, int], coupons: list[str]) -> dict:
    """Score a submitted cart: `match_rate`, `case_acc`, the final price and readable feedback.

    Args:
        task: the shopping task.
        cart: product id -> quantity.
        coupons: coupon ids in the cart.

    Returns:
        JSON-ready dict with match_rate (expected products in the cart / expected products), case_acc
        (exactly the expected products, once each, and exactly the expected coupons), cart_total,
        feedback lines and revealed hidden facts.
    """
    expected = set(task.answer)
    matched = expected & {pid for pid, qty in cart.items() if qty >= 1}
    exact = set(cart) == expected and all(qty == 1 for qty in cart.values()) and sorted(coupons) == list(task.answer_coupons)
    products = [task.product(pid) for pid in cart for _ in range(cart[pid])]
    owned = {c.id: c for c in task.user.coupons}
    total = cart_price(products, [owned[c] for c in coupons if c in owned])
    feedback = [f"{len(matched)} of {len(expected)} requested items match the expected products."]
    missing = len(expected) - len(matched)
    extra = sorted(set(cart) - expected)
    if missing:
        feedback.append(f"{missing} item(s) are not the best choice or are missing.")
    if extra:
        feedback.append(f"Unexpected products: {', '.join(extra[:5])}.")
    if sorted(coupons) != list(task.answer_coupons):
        feedback.append("The coupons are not the best choice." if total is not None else "A coupon in the cart cannot apply.")
    revealed = {}
    refused = [p.id for p in products if task.avoid_brand and p.brand == task.avoid_brand]
    if refused:
        feedback.append(f"The user returned {', '.join(refused)}: they never buy {task.avoid_brand} products.")
        revealed["avoid_brand"] = task.avoid_brand
    return {
        "match_rate": len(matched) / len(expected),
        "case_acc": float(exact),
        "cart_total": total,
        "feedback": feedback,
        "revealed": revealed,
    }
