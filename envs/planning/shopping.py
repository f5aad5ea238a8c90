"""`ShoppingPlanning`: DeepPlanning-style shopping with catalog, cart and coupon tools, scored against the exact best cart."""

from __future__ import annotations

import numpy as np

from envs.core import MAX_OBSERVATION_CHARS, TextEnv, Turn, printable
from envs.planning.shopping_world import (
    BRANDS,
    CATEGORIES,
    COLOURS,
    SHOPPING_TIERS,
    ShoppingTask,
    cart_price,
    check_cart,
    generate_shopping_task,
)
from envs.planning.tools import Parameter, Tool, ToolError, openai_schemas, parse_tool_call

__all__ = ["ShoppingPlanning", "SHOPPING_TOOLS"]

_MAX_ROWS = 40
SHOPPING_TOOLS = {
    tool.name: tool
    for tool in (
        Tool("get_user_info", "The shopper's gender, sizes and coupons."),
        Tool("search_products", "Search the catalog: id, name, brand, colour, gender, price, rating (cheapest first by default).", (
            Parameter("category", "string", "product category", required=False, choices=tuple(CATEGORIES)),
            Parameter("keyword", "string", "text the name must contain", required=False),
            Parameter("brand", "string", "only this brand", required=False, choices=BRANDS),
            Parameter("colour", "string", "only this colour", required=False, choices=COLOURS),
            Parameter("gender", "string", "men, women or unisex", required=False, choices=("men", "women", "unisex")),
            Parameter("size", "string", "only products offered in this size", required=False),
            Parameter("max_price", "number", "highest price", required=False, minimum=0),
            Parameter("sort_by", "string", "order of the results", required=False, choices=("price", "rating", "sales")))),
        Tool("get_product_details", "Every attribute of a product: sizes, season, stock, delivery days, sales.", (
            Parameter("product_id", "string", "e.g. P0012"),)),
        Tool("add_to_cart", "Put a product in the cart.", (
            Parameter("product_id", "string", "e.g. P0012"),
            Parameter("quantity", "integer", "how many (default 1)", required=False, minimum=1, maximum=10))),
        Tool("remove_from_cart", "Take a product out of the cart.", (Parameter("product_id", "string", "e.g. P0012"),)),
        Tool("add_coupon", "Apply one of the shopper's coupons to the cart.", (Parameter("coupon_id", "string", "e.g. C1"),)),
        Tool("remove_coupon", "Remove a coupon from the cart.", (Parameter("coupon_id", "string", "e.g. C1"),)),
        Tool("get_cart", "The cart: products, coupons and the final price."),
        Tool("submit_cart", "Check out the cart as it is; this ends the episode and it is scored."),
    )
}


class ShoppingPlanning(TextEnv):
    """Fill a shopping cart that meets a request, with catalog, cart and coupon tools.

    Description:
        DeepPlanning's shopping domain (arXiv 2601.18137) on a generated catalog. Level 1 (easy): the
        cheapest matching product per item; level 2 (medium): the best-rated cart within a budget;
        level 3 (hard): the cheapest cart after the shopper's coupons (same-brand first, then one
        cross-store coupon on the rest). The best cart is unique (ties are rejected at generation).
        Stock, sizes, season and delivery days appear only in `get_product_details`.
    Action Space:
        Text: one JSON tool call in `\\boxed{}` (see `SHOPPING_TOOLS`; reset info `tools` holds the schemas).
    Observation Space:
        Text: the rules and the request, then each tool's reply; after `submit_cart` the score.
    Starting State:
        A task drawn from `np_random` (`envs.planning.shopping_world.generate_shopping_task`); empty cart.
    Rewards:
        1.0 when the cart holds exactly the best products and coupons, else 0; with
        `shaped_reward=True` the submit pays `match_rate`. Format errors cost `format_penalty`.
    Episode End:
        On `submit_cart`, after `max_turns` calls, or after more than `max_invalid` failed calls.
    Information:
        Reset: instructions, task, episode_step, tools, query (the request as data: level, budget,
        requirements with category and filters). Every step: parsed_action, format_error,
        invalid_action, episode_step, tool, tool_result, tool_error. At the episode's end: success,
        episode_return, oracle_return, delivered, match_rate, case_acc, cart_total, feedback, revealed.
    Arguments:
        difficulty: "easy", "medium" or "hard" (levels 1-3).
        hidden: True for the meta variant (an unstated brand the shopper refuses).
        shaped_reward: pay `match_rate` on submit.
        max_turns, max_invalid, format_penalty and the other `TextEnv` arguments.
    Version History:
        v0: initial version.
    """

    def __init__(self, difficulty: str = "easy", hidden: bool = False, shaped_reward: bool = False, max_invalid: int = 8, **kwargs):
        if difficulty not in SHOPPING_TIERS:
            raise ValueError(f"difficulty={difficulty!r}; allowed: {sorted(SHOPPING_TIERS)}")
        kwargs.setdefault("max_turns", SHOPPING_TIERS[difficulty].max_turns)
        super().__init__(max_invalid=max_invalid, **kwargs)
        self.difficulty, self.hidden, self.shaped_reward = difficulty, bool(hidden), bool(shaped_reward)
        self.tools = dict(SHOPPING_TOOLS)
        self._cart: dict[str, int] = {}
        self._coupons: list[str] = []
        self._verdict: dict | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        observation, info = super().reset(seed=seed, options=options)
        info["tools"] = openai_schemas(self.tools)
        # The request in structured form (the same facts as its text; never the answer).
        info["query"] = {
            "level": self.task.level, "budget": self.task.budget,
            "requirements": [{"category": r.category, "filters": dict(r.filters), "text": r.text} for r in self.task.requirements],
        }
        return observation, info

    def sample_task(self, rng: np.random.Generator) -> ShoppingTask:
        return generate_shopping_task(rng, self.difficulty, self.hidden)

    @property
    def instructions(self) -> str:
        tools = "; ".join(tool.signature() for tool in self.tools.values())
        return "\n".join([
            "You are a shopping assistant. Build the cart the shopper asks for, then submit it.",
            'Act with one tool call per turn, as JSON inside \\boxed{}: \\boxed{{"name": "<tool>", "arguments": {...}}}.',
            f"Tools: {tools}.",
            "Rules: one product per requested item, quantity 1; products must fit the shopper's gender (or be "
            "unisex) and size, and be in stock. Coupons: a same-brand coupon takes its discount off every full "
            "threshold of that brand's subtotal; then at most one cross-store coupon applies to what is left. "
            "A coupon whose threshold is not reached cannot be used, and each brand takes at most one coupon.",
        ])

    def _start(self) -> str:
        self._cart, self._coupons, self._verdict = {}, [], None
        return "Request:\n" + self.task.query

    def _on_format_error(self) -> Turn:
        text = self._format_error_text()
        return Turn(text, info={"tool": None, "tool_result": None, "tool_error": text})

    def _play(self, action: str) -> Turn:
        name = None
        try:
            name, arguments = parse_tool_call(action, self.tools)
            if name == "submit_cart":
                return self._submit()
            text, result = getattr(self, "_tool_" + name)(**arguments)
        except ToolError as error:
            prefix = f"[{name}] error" if name else "Tool error"
            return Turn(f"{prefix}: {error}", invalid=True, info={"tool": name, "tool_result": None, "tool_error": str(error)})
        return Turn(printable(f"[{name}]\n{text}", MAX_OBSERVATION_CHARS), info={"tool": name, "tool_result": result, "tool_error": None})

    def oracle_return(self) -> float:
        return 1.0

    def _episode_metrics(self) -> dict:
        verdict = self._verdict or {"delivered": False, "match_rate": 0.0, "case_acc": 0.0, "cart_total": None,
                                    "feedback": "No cart was submitted.", "revealed": {}}
        return {**verdict, "revealed": dict(verdict["revealed"])}

    def _submit(self) -> Turn:
        verdict = check_cart(self.task, dict(self._cart), list(self._coupons))
        feedback = "[submit_cart] " + " ".join(verdict["feedback"]) + f" match_rate {verdict['match_rate']:.2f}."
        self._verdict = {"delivered": True, "match_rate": verdict["match_rate"], "case_acc": verdict["case_acc"],
                         "cart_total": verdict["cart_total"], "feedback": feedback, "revealed": verdict["revealed"]}
        success = verdict["case_acc"] == 1.0
        reward = verdict["match_rate"] if self.shaped_reward else float(success)
        return Turn(feedback, reward=reward, done=True, success=success,
                    info={"tool": "submit_cart", "tool_result": {"match_rate": verdict["match_rate"]}, "tool_error": None})

    # ----------------------------------------------------------------- tools
    def _product(self, product_id: str):
        product = self.task.product(product_id)
        if product is None:
            raise ToolError(f"no product {printable(product_id, 20)!r}; ids look like P0012 (search_products lists them)")
        return product

    def _tool_get_user_info(self):
        user = self.task.user
        result = {"name": user.name, "gender": user.gender, "clothing_size": user.clothing_size, "shoe_size": user.shoe_size,
                  "coupons": [{"id": c.id, "brand": c.brand or None, "threshold": c.threshold, "discount": c.discount}
                              for c in user.coupons]}
        coupons = "; ".join(c.describe() for c in user.coupons) or "none"
        text = (f"{user.name}: {user.gender}, clothing size {user.clothing_size}, shoe size {user.shoe_size}. "
                f"Coupons: {coupons}")
        return text, result

    def _tool_search_products(self, category=None, keyword=None, brand=None, colour=None, gender=None, size=None,
                              max_price=None, sort_by="price"):
        rows = [
            p for p in self.task.catalog
            if category in (None, p.category) and brand in (None, p.brand) and colour in (None, p.colour)
            and gender in (None, p.gender) and (size is None or size in p.sizes)
            and (max_price is None or p.price <= max_price) and (keyword is None or keyword.lower() in p.name.lower())
        ]
        order = {"price": lambda p: (p.price, p.id), "rating": lambda p: (-p.rating, p.id), "sales": lambda p: (-p.sales, p.id)}
        rows.sort(key=order[sort_by])
        if not rows:
            return "No products match.", []
        shown = rows[:_MAX_ROWS]
        result = [{"id": p.id, "name": p.name, "brand": p.brand, "colour": p.colour, "gender": p.gender,
                   "price": p.price, "rating": p.rating / 10} for p in shown]
        lines = [f"{p.id} | {p.name} | {p.brand} | {p.colour} | {p.gender} | {p.price} | rating {p.rating / 10:.1f}" for p in shown]
        if len(rows) > _MAX_ROWS:
            lines.append(f"... {len(rows) - _MAX_ROWS} more; narrow the search.")
        return "\n".join(lines), result

    def _tool_get_product_details(self, product_id):
        p = self._product(product_id)
        result = {"id": p.id, "name": p.name, "category": p.category, "brand": p.brand, "colour": p.colour,
                  "gender": p.gender, "season": p.season, "sizes": list(p.sizes), "price": p.price,
                  "rating": p.rating / 10, "sales": p.sales, "stock": p.stock, "ship_days": p.ship_days}
        text = (f"{p.id} {p.name}: {p.category}, {p.brand}, {p.colour}, {p.gender}, season {p.season}, sizes "
                f"{'/'.join(p.sizes)}, price {p.price}, rating {p.rating / 10:.1f}, {p.sales} sold, {p.stock} in stock, "
                f"delivered in {p.ship_days} days")
        return text, result

    def _tool_add_to_cart(self, product_id, quantity=1):
        p = self._product(product_id)
        if self._cart.get(p.id, 0) + quantity > p.stock:
            raise ToolError(f"only {p.stock} of {p.id} in stock")
        self._cart[p.id] = self._cart.get(p.id, 0) + quantity
        return f"Added {quantity} x {p.id} ({p.name}).", self._cart_result()

    def _tool_remove_from_cart(self, product_id):
        if product_id not in self._cart:
            raise ToolError(f"{printable(product_id, 20)!r} is not in the cart")
        del self._cart[product_id]
        return f"Removed {product_id}.", self._cart_result()

    def _tool_add_coupon(self, coupon_id):
        owned = {c.id for c in self.task.user.coupons}
        if coupon_id not in owned:
            raise ToolError(f"the shopper has no coupon {printable(coupon_id, 20)!r}; owned: {', '.join(sorted(owned)) or 'none'}")
        if coupon_id in self._coupons:
            raise ToolError(f"{coupon_id} is already in the cart")
        self._coupons.append(coupon_id)
        return f"Coupon {coupon_id} added.", self._cart_result()

    def _tool_remove_coupon(self, coupon_id):
        if coupon_id not in self._coupons:
            raise ToolError(f"{printable(coupon_id, 20)!r} is not in the cart")
        self._coupons.remove(coupon_id)
        return f"Coupon {coupon_id} removed.", self._cart_result()

    def _tool_get_cart(self):
        result = self._cart_result()
        lines = [f"{pid} x {qty}" for pid, qty in result["products"].items()] or ["(empty)"]
        lines.append(f"coupons: {', '.join(result['coupons']) or 'none'}")
        lines.append(f"subtotal {result['subtotal']}; final price "
                     + ("not available: a coupon cannot apply" if result["total"] is None else str(result["total"])))
        return "\n".join(lines), result

    def _cart_result(self) -> dict:
        products = [self.task.product(pid) for pid, qty in self._cart.items() for _ in range(qty)]
        owned = {c.id: c for c in self.task.user.coupons}
        total = cart_price(products, [owned[c] for c in self._coupons])
        return {"products": dict(self._cart), "coupons": list(self._coupons),
                "subtotal": sum(p.price for p in products), "total": total}
