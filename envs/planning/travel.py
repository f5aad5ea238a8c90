"""`TravelPlanning`: DeepPlanning-style multi-day trip planning with tools, on procedurally generated worlds."""

from __future__ import annotations

import json

import numpy as np

from envs.core import MAX_OBSERVATION_CHARS, TextEnv, Turn, printable
from envs.planning.tools import ToolError, openai_schemas, parse_tool_call
from envs.planning.travel_checker import DIMENSIONS, PLAN_SCHEMA_TEXT, check_plan, read_plan
from envs.planning.travel_schedule import DINNER_WINDOW, LUNCH_WINDOW, MEAL_MINUTES
from envs.planning.travel_tasks import HIDDEN_KINDS, TravelTask, generate_task
from envs.planning.travel_tools import TRAVEL_TOOLS, TravelTools
from envs.planning.travel_world import ROUTE_RULE, TRAVEL_TIERS, WEEKDAYS, clock

__all__ = ["TravelPlanning", "TRAVEL_TOOLS"]


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
        Reset: instructions, task, episode_step, tools, query (the request as data, without answers),
        database (the world, in the database-in-prompt mode only). Every step: parsed_action, format_error,
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
        # In the database mode a turn is only needed to resubmit after a schema error.
        kwargs.setdefault("max_turns", 6 if database_in_prompt else TRAVEL_TIERS[difficulty].max_turns)
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
        if self.database_in_prompt:
            # The whole world is in the observation already; programs get it as data.
            info["database"] = self.task.world
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
        text = "Request:\n" + self.task.query
        if self.database_in_prompt:
            text += "\n\n" + TravelTools(self.task.world, self.task.trip).database_text()
        return text

    def _on_format_error(self) -> Turn:
        text = self._format_error_text()
        return Turn(text, info=self._tool_info(None, None, text))

    def _play(self, action: str) -> Turn:
        try:
            name, arguments = parse_tool_call(action, self.tools)
        except ToolError as error:
            message = str(error)
            return Turn(f"Tool error: {message}", invalid=True, info=self._tool_info(None, None, message))
        if name == "submit_plan":
            return self._submit(arguments["plan"])
        try:
            text, result = TravelTools(self.task.world, self.task.trip).run(name, arguments)
        except ToolError as error:
            message = str(error)
            return Turn(f"[{name}] error: {message}", invalid=True, info=self._tool_info(name, None, message))
        return Turn(printable(f"[{name}]\n{text}", MAX_OBSERVATION_CHARS), info=self._tool_info(name, result, None))

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
            text = f"[submit_plan] rejected: {message}. Fix it and resubmit.\nSchema: {PLAN_SCHEMA_TEXT}"
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

