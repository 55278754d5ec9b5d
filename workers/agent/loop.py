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
from workers.agent.model import ModelClient, ModelError, ModelReply, Usage
from workers.agent.observer import AgentObserver
from workers.agent.prompts import system_prompt, task_message
from workers.agent.stuck import StepOutcome, StuckDetector
from workers.agent.task import Task
from workers.agent.toolcall import FormatError, ToolCall, tool_calls_of
from workers.agent.tools import Observation, TestRun, TodoItem, Toolbox, ToolContext
from workers.agent.trajectory import StepRecord, Trajectory

CHARS_PER_TOKEN = 4
NUDGE = (
    "You appear to be stuck: {why}. Step back: re-read the issue and your plan, and try a "
    "different approach. If the task is done, call `submit`."
)
CONDENSE_TARGET = 0.6
"""After condensing, the context should be at most this share of the threshold."""
CUT_OFF = "Your reply was cut off at the output token limit. Make smaller steps."


class AgentConfig(BaseModel):
    """Limits and knobs of one agent run."""

    max_steps: int = Field(100, gt=0)
    """Model calls allowed before the run stops with step_limit."""
    max_tokens: int = Field(5_000_000, gt=0)
    """Prompt plus completion tokens allowed over the whole run."""
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
    context_window: int = Field(262_144, gt=0)
    """The model's context length in tokens."""
    condense_threshold: float = Field(0.8, gt=0, le=1)
    """Fraction of the window at which older observations are elided."""
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
    started: float = field(default_factory=time.monotonic)

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
        self.messages = [
            {"role": "system", "content": system_prompt(self.task, self.sandbox.workspace)},
            {"role": "user", "content": task_message(self.task)},
        ]
        self.trajectory.write("start", messages=self.messages, tools=self.toolbox.schemas)
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

    def check_limits(self) -> None:
        config = self.config
        if self.steps >= config.max_steps:
            raise exits.StepLimitReached(f"reached the limit of {config.max_steps} steps")
        if self.usage.total_tokens >= config.max_tokens:
            raise exits.TokenLimitReached(f"used {self.usage.total_tokens} tokens")
        if config.max_cost is not None and self.cost() >= config.max_cost:
            raise exits.CostLimitReached(f"spent {self.cost():.4f} of {config.max_cost}")

    def cost(self) -> float:
        usage, config = self.usage, self.config
        uncached = usage.prompt_tokens - usage.cached_tokens
        spent = uncached * config.price_input + usage.cached_tokens * config.price_cached
        return (spent + usage.completion_tokens * config.price_output) / 1_000_000

    async def query(self) -> ModelReply:
        self.condense_if_near_window()
        try:
            reply = await self.model.complete(self.messages, self.toolbox.schemas)
        except ModelError as exc:
            raise exits.ModelFailed(str(exc)) from exc
        self.steps += 1
        self.usage.add(reply.usage)
        self.record.usage, self.record.model_seconds = reply.usage, reply.usage.latency
        return reply

    async def execute(self, reply: ModelReply) -> None:
        try:
            if reply.finish_reason == "length":
                raise FormatError(CUT_OFF)
            calls, from_text = tool_calls_of(reply.content, reply.tool_calls, self.toolbox.schemas)
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
                observation = await self.toolbox.execute(call)
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

    def condense_if_near_window(self) -> None:
        limit = self.config.condense_threshold * self.config.context_window
        if self.estimated_context() < limit:
            return
        # Condense well below the threshold: every condensation costs one prefix-cache miss,
        # so one deep cut beats a shallow one on every later step.
        target = limit * CONDENSE_TARGET
        keep, removed = self.config.keep_recent_observations, 0
        while True:
            removed += condense(self.messages, keep)
            # The newest observation always stays: the model has not read it yet.
            if self.estimated_context() < target or keep <= 1:
                break
            keep //= 2
        if removed:
            self.trajectory.write("condensed", characters=removed, step=self.steps, kept=keep)

    def estimated_context(self) -> int:
        # A character count of the whole conversation: cheap and never lags behind like usage does.
        chars = sum(len(str(m.get("content") or "")) for m in self.messages)
        return chars // CHARS_PER_TOKEN + self.model.config.max_tokens

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
    """The reply as it goes back into the history, unchanged so the prefix cache keeps hitting."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
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
) -> AgentResult:
    """Drive the model through the tools until it submits or a limit stops it."""
    agent = Agent(task, sandbox, model, config, observer, Trajectory(trajectory))
    return await agent.run()
