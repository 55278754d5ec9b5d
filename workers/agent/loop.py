"""The agent loop: run → step → query → execute, with exits carried by AgentExit exceptions."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bot.redaction import redact
from sandbox.protocol import Sandbox
from workers.agent import exits
from workers.agent.condense import condense
from workers.agent.context_budget import FIRST_GUESS_CHARS_PER_TOKEN, ContextBudget
from workers.agent.model import (
    REASONING_FIELDS,
    ContextTooLong,
    ModelClient,
    ModelError,
    ModelReply,
    Usage,
)
from workers.agent.observer import AgentObserver
from workers.agent.prompts import system_prompt, task_message
from workers.agent.stuck import StepOutcome, StuckDetector
from workers.agent.task import Task
from workers.agent.toolcall import FormatError, ToolCall, tool_calls_of
from workers.agent.tools import Observation, TestRun, TodoItem, Toolbox, ToolContext
from workers.agent.trajectory import EventSink, StepRecord, Trajectory

NUDGE = (
    "You appear to be stuck: {why}. Step back: re-read the issue and your plan, and try a "
    "different approach. If the task is done, call `submit`."
)
CONDENSE_TARGET = 0.6
"""After condensing, the context should be at most this share of the threshold."""
CUT_OFF = (
    "Your reply was cut off at the output token limit, so none of it was run. Make smaller "
    "steps: write big files in parts (create a short file, then `insert` the rest)."
)
EMPTY_REPLY = (
    "Your reply was empty: no text and no tool call, so nothing was run. Call the tools you "
    "need; when the task is done, call `submit`."
)
OBSERVATION_SHARE = 6
MIN_OBSERVATION = 2_000
HARD_CONDENSE = 0.5
"""After the server refused a prompt as too long, condense to this share of the room."""


class AgentConfig(BaseModel):
    """Limits and knobs of one agent run."""

    max_steps: int = Field(100, gt=0)
    """Model calls allowed before the run stops with step_limit."""
    max_tokens: int = Field(5_000_000, gt=0)
    """Tokens the run may spend: uncached prompt tokens plus completion tokens (cached prompt
    tokens are reported and priced apart)."""
    wall_time: float = Field(3600.0, gt=0)
    """Seconds the whole run may take."""
    max_cost: float | None = None
    """Spending cap in the unit of the prices below; None for no cap."""
    price_input: float = 0.0
    """Cost per million uncached prompt tokens."""
    price_cached: float = 0.0
    """Cost per million cached prompt tokens."""
    price_output: float = 0.0
    """Cost per million completion tokens."""
    format_error_retries: int = Field(3, ge=0)
    """Consecutive malformed replies tolerated before the run stops with format_error."""
    stuck_repeats: int = Field(3, ge=2)
    """Identical steps in a row that count as a loop (the first loop gets a nudge)."""
    context_window: int | None = Field(None, gt=0)
    """AGENT_CONTEXT_WINDOW: a cap on the window in tokens; None: the server's `max_model_len`
    (or, if it does not say, the model's native window)."""
    condense_threshold: float = Field(0.8, gt=0, le=1)
    """Share of the prompt's room (the window less the output reservation) at which older
    observations are elided."""
    keep_recent_observations: int = Field(8, ge=0)
    """Observations never elided by condensation."""
    observation_limit: int = Field(16_000, gt=100)
    """Characters of one tool output kept (cut in the middle)."""
    command_timeout: float = Field(120.0, gt=0)
    """Default seconds for one bash command."""
    test_timeout: float = Field(900.0, gt=0)
    """Seconds for one run of the test command."""


@dataclass
class AgentResult:
    """How a run ended and what it produced; `diff` is read from the sandbox even on failure."""

    exit_status: exits.ExitStatus
    reason: str
    diff: str
    summary: str | None
    plan: list[TodoItem]
    steps: int
    usage: Usage
    elapsed: float
    last_test_run: TestRun | None = None
    cost: float = 0.0


@dataclass
class Agent:
    """One run's state; `run_agent` is the entry point."""

    task: Task
    sandbox: Sandbox
    model: ModelClient
    config: AgentConfig
    observer: AgentObserver | None
    trajectory: Trajectory
    toolbox: Toolbox = field(init=False)
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    format_errors: int = 0
    nudged: bool = False
    stuck: StuckDetector = field(init=False)
    record: StepRecord = field(init=False)
    budget: ContextBudget = field(init=False)
    started: float = field(default_factory=time.monotonic)
    max_tokens: int = 0
    """`max_tokens` of the request in flight."""
    window_source: str = ""

    def __post_init__(self) -> None:
        self.stuck = StuckDetector(repeats=self.config.stuck_repeats)
        self.toolbox = Toolbox(self.tool_context())
        self.record = StepRecord(step=0)

    def tool_context(self) -> ToolContext:
        on_plan = self.observer.plan_changed if self.observer is not None else None
        return ToolContext(
            sandbox=self.sandbox,
            test_command=self.task.test_command,
            test_timeout=self.config.test_timeout,
            command_timeout=self.config.command_timeout,
            observation_limit=self.config.observation_limit,
            read_only=self.task.mode != "fix",
            on_plan_change=on_plan,
        )

    async def run(self) -> AgentResult:
        self.budget = await self.context_budget()
        self.fit_observations()
        self.messages = [
            {"role": "system", "content": system_prompt(self.task, self.sandbox.workspace)},
            {"role": "user", "content": task_message(self.task)},
        ]
        self.trajectory.write(
            "start", messages=self.messages, tools=self.toolbox.schemas,
            profile=self.model.profile.name, window=self.budget.window,
            window_source=self.window_source, output_reserve=self.budget.output,
        )  # fmt: skip
        try:
            async with asyncio.timeout(self.config.wall_time):
                while True:
                    await self.step()
        except exits.AgentExit as exit_:
            ending: exits.AgentExit = exit_
        except TimeoutError:
            ending = exits.TimeLimitReached(f"wall time of {self.config.wall_time:.0f} s is up")
        return await self.finish(ending)

    async def step(self) -> None:
        self.check_limits()
        self.record = StepRecord(step=self.steps + 1)
        reply = await self.query()
        try:
            await self.execute(reply)
        finally:
            self.trajectory.write_step(self.record)
            if self.observer is not None:
                await self.observer.step_finished(self.record)

    async def context_budget(self) -> ContextBudget:
        """The window this run must fit: the server's, capped by AGENT_CONTEXT_WINDOW."""
        try:
            info = await self.model.server_info()
            served, source = info.window, info.source
        except ModelError as exc:
            served, source = None, f"unknown ({exc})"
        windows = [w for w in (served, self.config.context_window) if w]
        window = min(windows) if windows else self.model.profile.native_window
        self.window_source = f"{source}: {served}" if served else source
        return ContextBudget(
            window=window,
            output_budget=self.model.output_budget,
            tools_chars=len(json.dumps(self.toolbox.schemas, ensure_ascii=False)),
        )

    def fit_observations(self) -> None:
        """No single tool output may take more than a sixth of the prompt's room, counted at
        the first-guess rate, so one big listing never blows a small window on its own."""
        share = int(self.budget.prompt_room * FIRST_GUESS_CHARS_PER_TOKEN / OBSERVATION_SHARE)
        self.toolbox.context.observation_limit = max(
            min(self.config.observation_limit, share), MIN_OBSERVATION
        )

    def check_limits(self) -> None:
        config = self.config
        if self.steps >= config.max_steps:
            raise exits.StepLimitReached(f"reached the limit of {config.max_steps} steps")
        spent = self.usage.billable_tokens
        if spent >= config.max_tokens:
            raise exits.TokenLimitReached(
                f"spent {spent:,} tokens ({self.usage.cached_tokens:,} more were cached)"
            )
        if config.max_cost is not None and self.cost() >= config.max_cost:
            raise exits.CostLimitReached(f"spent {self.cost():.4f} of {config.max_cost}")

    def cost(self) -> float:
        usage, config = self.usage, self.config
        uncached = usage.prompt_tokens - usage.cached_tokens
        spent = uncached * config.price_input + usage.cached_tokens * config.price_cached
        return (spent + usage.completion_tokens * config.price_output) / 1_000_000

    async def query(self) -> ModelReply:
        try:
            reply = await self.ask(force=False)
        except ContextTooLong as refused:
            # The estimate was off (another tokenizer, a template that renders more): learn
            # from the server's count, condense hard, and ask once more.
            self.trajectory.write("context_refused", error=str(refused), step=self.steps)
            if refused.window and refused.window < self.budget.window:
                # The server did not say its window before (a gateway in front of it): now it has.
                self.budget.window = refused.window
                self.fit_observations()
            counted = refused.prompt_tokens or 0
            if refused.at_least:
                # vLLM stops counting at the window less max_tokens: the prompt is longer.
                counted = int(counted * 1.25)
            if counted > self.budget.estimate(self.messages):
                self.budget.calibrate(self.messages, counted)
            try:
                reply = await self.ask(force=True)
            except ContextTooLong as again:
                raise exits.ContextExhausted(self.exhausted(str(again))) from again
        except ModelError as exc:
            raise exits.ModelFailed(str(exc)) from exc
        self.budget.observe(self.messages, reply.usage.prompt_tokens, reply.usage.completion_tokens)
        self.steps += 1
        self.usage.add(reply.usage)
        self.record.usage, self.record.model_seconds = reply.usage, reply.usage.latency
        return reply

    async def ask(self, *, force: bool) -> ModelReply:
        """One request that fits the window: condensed first if need be, its output reservation
        shrunk if the prompt still takes more."""
        self.condense_if_near_window(force=force)
        max_tokens = self.budget.max_tokens_for(self.budget.estimate(self.messages))
        if max_tokens is None:
            raise exits.ContextExhausted(self.exhausted("even condensed, the prompt is too long"))
        self.max_tokens = max_tokens
        try:
            return await self.model.complete(
                self.messages, self.toolbox.schemas, max_tokens=max_tokens
            )
        except ContextTooLong:
            raise
        except ModelError as exc:
            raise exits.ModelFailed(str(exc)) from exc

    def exhausted(self, why: str) -> str:
        return (
            f"the conversation no longer fits the model's {self.budget.window:,}-token window "
            f"({why}); the change so far is kept"
        )

    def cut_off(self, reply: ModelReply) -> bool:
        """The reply hit its output limit: vLLM still says "tool_calls" when it parsed a call
        out of the cut text, so the token count is what tells."""
        completion = reply.usage.completion_tokens
        return reply.finish_reason == "length" or (
            self.max_tokens > 0 and completion >= self.max_tokens
        )

    async def execute(self, reply: ModelReply) -> None:
        try:
            if self.cut_off(reply):
                raise FormatError(CUT_OFF)
            if reply.empty:
                raise FormatError(EMPTY_REPLY)
            calls, from_text = tool_calls_of(reply.answer, reply.tool_calls, self.toolbox.schemas)
        except FormatError as exc:
            return self.reject(reply, exc)
        self.format_errors = 0
        self.append(assistant_message(reply, from_text))
        self.record.tool_calls = [{"name": c.name, "arguments": c.arguments} for c in calls]
        observations = await self.run_tools(calls)
        for message in observation_messages(calls, observations, from_text):
            self.append(message)
        self.check_stuck(calls, observations)

    async def run_tools(self, calls: list[ToolCall]) -> list[Observation]:
        started, observations = time.monotonic(), []
        try:
            for call in calls:
                began = time.monotonic()
                observation = await self.toolbox.execute(call)
                self.record.tool_call_seconds.append(time.monotonic() - began)
                # Defence in depth: the sandbox holds no secret, but if one ever showed up in
                # a tool's output, the model and the trajectory would not see it.
                observations.append(replace(observation, text=redact(observation.text)))
                self.record.observations.append(observations[-1].text)
        except exits.AgentExit:
            raise
        except Exception as exc:
            # The sandbox itself broke (container gone, exec failed); the model cannot fix that.
            raise exits.SandboxFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.record.tool_seconds = time.monotonic() - started
        return observations

    def reject(self, reply: ModelReply, error: FormatError) -> None:
        self.format_errors += 1
        if self.format_errors > self.config.format_error_retries:
            raise exits.TooManyFormatErrors(f"{self.format_errors} malformed replies: {error}")
        self.append(assistant_message(reply, from_text=True))
        self.append({"role": "user", "content": f"Format error: {error}"})
        self.record.note = f"format error: {error}"

    def check_stuck(self, calls: list[ToolCall], observations: list[Observation]) -> None:
        action = json.dumps([[c.name, c.arguments] for c in calls], sort_keys=True)
        result = "\n".join(o.text for o in observations)
        is_error = any(o.is_error for o in observations)
        why = self.stuck.record(StepOutcome(action, result, is_error))
        if why is None:
            return
        if self.nudged:
            raise exits.Stuck(why)
        self.nudged = True
        self.stuck.reset()
        self.append({"role": "user", "content": NUDGE.format(why=why)})
        self.record.note = f"nudged: {why}"

    def append(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.record.messages.append(message)

    def condense_if_near_window(self, *, force: bool = False) -> None:
        room = self.budget.prompt_room
        limit = self.config.condense_threshold * room
        before = self.budget.estimate(self.messages)
        if before < limit and not force:
            return
        # Condense well below the threshold: every condensation costs one prefix-cache miss,
        # so one deep cut beats a shallow one on every later step.
        target = (HARD_CONDENSE if force else CONDENSE_TARGET) * room
        keep, removed = self.config.keep_recent_observations, 0
        while True:
            cut = condense(self.messages, keep)
            removed += cut
            self.budget.elided(cut)
            # The newest observation always stays: the model has not read it yet.
            if self.budget.estimate(self.messages) < target or keep <= 1:
                break
            keep //= 2
        if removed:
            self.trajectory.write(
                "condensed", characters=removed, step=self.steps, kept=keep,
                tokens_before=before, tokens_after=self.budget.estimate(self.messages),
            )  # fmt: skip

    async def finish(self, ending: exits.AgentExit) -> AgentResult:
        context = self.toolbox.context
        result = AgentResult(
            exit_status=ending.status,
            reason=ending.reason,
            diff=await self.final_diff(),
            summary=ending.reason if isinstance(ending, exits.Submitted) else None,
            plan=list(context.plan),
            steps=self.steps,
            usage=self.usage,
            elapsed=time.monotonic() - self.started,
            last_test_run=context.last_test_run,
            cost=self.cost(),
        )
        self.trajectory.write(
            "exit", status=result.exit_status, reason=result.reason, diff=result.diff
        )
        return result

    async def final_diff(self) -> str:
        try:
            return await self.sandbox.diff()
        except Exception as exc:
            self.trajectory.write("diff_failed", error=f"{type(exc).__name__}: {exc}")
            return ""


def assistant_message(reply: ModelReply, from_text: bool) -> dict[str, Any]:
    """The reply as it goes back into the history, unchanged so the prefix cache keeps hitting.

    Reasoning goes back in the field the server sent it in, which is the one it reads: vLLM
    reads only `reasoning` and drops `reasoning_content`, SGLang the other way round. Inline
    reasoning stays where it was, in the content."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning_field in REASONING_FIELDS:
        message[reply.reasoning_field] = reply.reasoning
    if reply.tool_calls and not from_text:
        message["tool_calls"] = reply.tool_calls
    return message


def observation_messages(
    calls: list[ToolCall], observations: list[Observation], from_text: bool
) -> list[dict[str, Any]]:
    """Native calls get `tool` messages; calls parsed from text get one Qwen-style user turn."""
    if not from_text:
        return [
            {"role": "tool", "tool_call_id": call.id, "content": observation.text}
            for call, observation in zip(calls, observations, strict=False)
        ]
    responses = [f"<tool_response>\n{o.text}\n</tool_response>" for o in observations]
    return [{"role": "user", "content": "\n".join(responses)}]


async def run_agent(
    task: Task,
    sandbox: Sandbox,
    model: ModelClient,
    config: AgentConfig,
    *,
    observer: AgentObserver | None = None,
    trajectory: Path | None = None,
    events: EventSink | None = None,
) -> AgentResult:
    """Drive the model through the tools until it submits or a limit stops it; each event goes
    to the `trajectory` file and to `events`."""
    agent = Agent(task, sandbox, model, config, observer, Trajectory(trajectory, events))
    return await agent.run()
