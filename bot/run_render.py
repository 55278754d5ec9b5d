"""The run viewer's HTML, rendered on the server from a run's header and events (bot/runs.py).

Pure functions, every text escaped: event text was written by the model, by tools and by the
strangers whose issues and code it read. The page's script only inserts fragments made here.
"""

from __future__ import annotations

import difflib
import html
import json
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from bot.runs import RunHeader

COLLAPSE_LINES = 12
"""Outputs longer than this are folded."""
TOOL_CALL_TEXT = re.compile(r"<tool_call>.*?(</tool_call>|\Z)", re.S)
THINK = re.compile(r"<think>(.*?)(</think>|\Z)", re.S)
COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")
STATE_ICONS = {"queued": "⏳", "running": "🛠️", "done": "✅", "failed": "❌", "stopped": "⏹️"}


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str, *, script: bool = False, signed_in: bool = True) -> str:
    """A whole page: the viewer's stylesheet, and its script when the page is live."""
    js = '<script src="/runs/static/viewer.js" defer></script>' if script else ""
    out = (
        "<form method=post action=/logout><button class=link type=submit>sign out</button></form>"
        if signed_in
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · qwen-fix</title>"
        f'<link rel=stylesheet href="/runs/static/viewer.css">{js}</head>'
        f"<body><header class=top><a href=/runs>qwen-fix runs</a>{out}"
        f"</header><main>{body}</main></body></html>"
    )


def duration(seconds: float) -> str:
    minutes, secs = divmod(max(int(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def target(header: RunHeader) -> str:
    kind = "issue" if header.kind == "issue" else "pull request"
    return f"{header.repository} {kind} #{header.number}"


def run_list(
    runs: Sequence[RunHeader], *, repository: str | None, state: str | None, more: float | None
) -> str:
    """The list of runs, newest first, with its filters and the link to older ones."""
    rows = "".join(_run_row(run) for run in runs) or (
        "<tr><td colspan=8 class=empty>No runs to show.</td></tr>"
    )
    states = "".join(
        f"<option value={s}{' selected' if s == state else ''}>{s}</option>"
        for s in ("", "queued", "running", "done", "failed", "stopped")
    )
    older = ""
    if more is not None:
        query = {k: v for k, v in (("repo", repository), ("state", state)) if v}
        older = f'<p><a href="/runs?{e(urlencode({**query, "before": more}))}">Older runs →</a></p>'
    return (
        "<h1>Runs</h1><form class=filters method=get action=/runs>"
        f'<input name=repo placeholder="owner/name" value="{e(repository or "")}" '
        'aria-label="repository">'
        f'<select name=state aria-label="state">{states}</select><button>Filter</button></form>'
        "<table class=runs><thead><tr><th>run</th><th>trigger</th><th>mode</th><th>state</th>"
        "<th>time</th><th>steps</th><th>tokens</th><th>cost</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{older}"
    )


def _run_row(run: RunHeader) -> str:
    pr = f' · <a href="{e(run.pr_url)}">PR</a>' if run.pr_url else ""
    cost = f"${run.cost:.2f}" if run.cost is not None else ""
    return (
        f'<tr class="state-{e(run.state)}"><td><a href="/runs/{e(run.id)}">{e(target(run))}</a>'
        f"{pr}<br><small>{e(when(run.started))}</small></td>"
        f"<td>{e(run.trigger)} by @{e(run.requested_by)}</td><td>{e(run.mode)}</td>"
        f"<td>{STATE_ICONS.get(run.state, '')} {e(run.state)}</td>"
        f"<td>{e(duration(run.seconds))}</td><td>{run.steps} steps</td>"
        f"<td>{run.tokens:,} tokens</td>"
        f"<td>{cost}</td></tr>"
    )


def run_header(run: RunHeader) -> str:
    """The header of a run's page: what, state and totals. Replaced live as they change."""
    pr = f' · <a href="{e(run.pr_url)}">pull request</a>' if run.pr_url else ""
    return (
        f'<section id=header class="head state-{e(run.state)}" data-state="{e(run.state)}">'
        f"<h1>{STATE_ICONS.get(run.state, '')} {e(target(run))}</h1>"
        f"<p class=headline>{e(run.headline)}</p>"
        f"<p>{e(run.kind.replace('_', ' '))} run · {e(run.mode)} · {e(run.trigger)} by "
        f"@{e(run.requested_by)} · started {e(when(run.started))}{pr}</p>"
        f"<p class=totals><b>{e(run.state)}</b> · {e(duration(run.seconds))} · "
        f"<span id=steps>{run.steps}</span> steps · {run.tokens:,} tokens"
        f"{f' · ${run.cost:.2f}' if run.cost is not None else ''}</p></section>"
    )


def run_page(run: RunHeader, events: Iterable[tuple[str, dict[str, Any]]], last_id: str) -> str:
    """A run's whole page as of `last_id`; its script follows the stream from there."""
    fragments = [event_html(event_id, event) for event_id, event in events]
    plan = next(
        (f for f in reversed(fragments) if f.startswith("<section id=plan")),
        "<section id=plan class=plan hidden></section>",
    )
    timeline = "".join(f for f in fragments if not f.startswith("<section id=plan"))
    search = '<input id=search type=search placeholder="Search the steps" aria-label="search">'
    return (
        f'<div id=run data-run="{e(run.id)}" data-after="{e(last_id)}" '
        f'data-live="{"no" if run.ended else "yes"}">{run_header(run)}{plan}'
        f"<h2>Timeline</h2>{search}<ol id=timeline class=timeline>{timeline}</ol></div>"
    )


def event_html(event_id: str, event: dict[str, Any]) -> str:
    """One event as a timeline item (or the plan section, which replaces the one shown)."""
    kind = str(event.get("type", ""))
    render = RENDERERS.get(kind)
    if render is None:
        return ""
    body = render(event)
    if kind == "plan":
        return body
    return f'<li class="event {e(kind)}" id="e-{e(event_id)}">{body}</li>'


def _start(event: dict[str, Any]) -> str:
    messages = event.get("messages") or []
    task = next((m.get("content") for m in messages if m.get("role") == "user"), "")
    window = event.get("window")
    return (
        f"<h3>Started</h3><p>model profile {e(event.get('profile', '?'))}"
        f"{f' · context window {int(window):,} tokens' if window else ''}</p>"
        f"{_folded('The task as the model read it', str(task or ''), force=True)}"
    )


def _step(event: dict[str, Any]) -> str:
    usage = event.get("usage") or {}
    parts = [
        f"<h3>Step {e(event.get('step', '?'))}</h3><p class=meta>"
        f"{int(usage.get('prompt_tokens', 0)):,} prompt + "
        f"{int(usage.get('completion_tokens', 0)):,} completion tokens · model "
        f"{float(event.get('model_seconds', 0)):.1f} s · tools "
        f"{float(event.get('tool_seconds', 0)):.1f} s</p>"
    ]
    for message in event.get("messages") or []:
        if message.get("role") != "assistant":
            continue
        content = str(message.get("content") or "")
        reasoning = str(message.get("reasoning") or message.get("reasoning_content") or "")
        inline = THINK.search(content)
        if inline:
            reasoning = (reasoning + "\n" + inline.group(1)).strip()
            content = THINK.sub("", content)
        if reasoning:
            parts.append(_folded("Reasoning", reasoning, force=True))
        text = TOOL_CALL_TEXT.sub("", content).strip()
        if text:
            parts.append(f"<div class=say>{e(text)}</div>")
    calls = event.get("tool_calls") or []
    outputs = event.get("observations") or []
    for index, call in enumerate(calls):
        parts.append(tool_call_html(call))
        if index < len(outputs):
            parts.append(_folded("Output", str(outputs[index])))
    if event.get("note"):
        parts.append(f"<p class=note>{e(event['note'])}</p>")
    return "".join(parts)


def tool_call_html(call: dict[str, Any]) -> str:
    """A tool call as people read it: a command, a file, an edit as a diff."""
    name = str(call.get("name", "?"))
    args = call.get("arguments") or {}
    if not isinstance(args, dict):
        args = {"arguments": args}
    if name == "bash":
        return f"<pre class=command>$ {e(args.get('command', ''))}</pre>"
    if name == "str_replace_editor":
        command, path = str(args.get("command", "")), str(args.get("path", ""))
        head = f"<p class=tool>{e(command)} <code>{e(path)}</code></p>"
        if command == "str_replace":
            return head + diff_html(
                _diff(path, str(args.get("old_str", "")), str(args.get("new_str", "")))
            )
        if command in ("create", "insert"):
            text = str(args.get("file_text") or args.get("new_str") or "")
            return head + diff_html(_diff(path, "", text))
        return head
    if name == "submit":
        return f"<p class=tool>submit</p><div class=say>{e(args.get('summary', ''))}</div>"
    shown = json.dumps(args, ensure_ascii=False, indent=1)
    return f"<p class=tool>{e(name)}</p>" + (f"<pre>{e(shown)}</pre>" if args else "")


def _diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def diff_html(diff: str) -> str:
    """A unified diff with added and removed lines marked."""
    rows = []
    for line in diff.splitlines():
        kind = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        rows.append(f'<span class="{kind}">{e(line)}</span>')
    return f"<pre class=diff>{''.join(rows)}</pre>"


def _plan(event: dict[str, Any]) -> str:
    marks = {"done": "☑", "in_progress": "▶", "pending": "☐"}
    items = "".join(
        f'<li class="{e(item.get("status", ""))}">{marks.get(str(item.get("status")), "☐")} '
        f"{e(item.get('text', ''))}</li>"
        for item in event.get("items") or []
    )
    return f"<section id=plan class=plan><h2>Plan</h2><ul>{items}</ul></section>"


def _condensed(event: dict[str, Any]) -> str:
    return (
        f"<p class=meta>Context condensed at step {e(event.get('step', '?'))}: "
        f"{int(event.get('tokens_before', 0)):,} → {int(event.get('tokens_after', 0)):,} "
        "tokens</p>"
    )


def _refused(event: dict[str, Any]) -> str:
    return f"<p class=meta>The model server refused the prompt: {e(event.get('error', ''))}</p>"


def _exit(event: dict[str, Any]) -> str:
    return (
        f"<h3>The agent stopped: {e(event.get('status', ''))}</h3>"
        f"<div class=say>{e(event.get('reason', ''))}</div>"
    )


def _diff_event(event: dict[str, Any]) -> str:
    patch = str(event.get("patch") or "")
    if not patch.strip():
        return "<h3>The change</h3><p>No change.</p>"
    return f"<h3>The change</h3>{diff_html(patch)}"


def _verification(event: dict[str, Any]) -> str:
    log = str(event.get("log") or "")
    counts = ", ".join(f"{n} {word}" for n, word in COUNTS.findall(log[-4000:])[-4:])
    verdict = {True: "passed", False: "failed", None: "did not run"}[event.get("passed")]
    command = event.get("command")
    return (
        f"<h3>Tests {verdict}</h3><p><code>{e(command or 'no test command')}</code>"
        f"{f' · {e(counts)}' if counts else ''}</p>{_folded('Test log', log)}"
    )


def _outcome(event: dict[str, Any]) -> str:
    return (
        f"<h3>{e(event.get('headline', ''))}</h3><div class=say>{e(event.get('detail', ''))}</div>"
    )


def _folded(label: str, text: str, *, force: bool = False) -> str:
    lines = text.count("\n") + 1
    if not force and lines <= COLLAPSE_LINES:
        return f"<pre class=output>{e(text)}</pre>"
    return (
        f"<details><summary>{e(label)} ({lines:,} lines)</summary>"
        f"<pre class=output>{e(text)}</pre></details>"
    )


RENDERERS = {
    "start": _start,
    "step": _step,
    "plan": _plan,
    "condensed": _condensed,
    "context_refused": _refused,
    "exit": _exit,
    "diff": _diff_event,
    "verification": _verification,
    "outcome": _outcome,
}


def events_of_jsonl(text: str) -> list[tuple[str, dict[str, Any]]]:
    """A trajectory file's lines as the stream's (id, event) pairs: the same objects."""
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            events.append((f"0-{number}", json.loads(line)))
    return events


def standalone_page(title: str, events: Sequence[tuple[str, dict[str, Any]]], style: str) -> str:
    """A run's timeline as one self-contained HTML file, from its trajectory alone (no header:
    the file does not say which issue it was)."""
    fragments = [event_html(event_id, event) for event_id, event in events]
    plan = next((f for f in reversed(fragments) if f.startswith("<section id=plan")), "")
    timeline = "".join(f for f in fragments if not f.startswith("<section id=plan"))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{style}</style></head><body><main>"
        f"<h1>{e(title)}</h1>{plan}<h2>Timeline</h2><ol class=timeline>{timeline}</ol>"
        "</main></body></html>"
    )
