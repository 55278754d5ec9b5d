"""The run viewer's stylesheet and script, served from /runs/static/ (no inline script: the
pages' Content-Security-Policy allows scripts of this site only)."""

STYLE = """
:root { color-scheme: light dark; --line: #8884; --add: #2a72; --del: #d332; --muted: #888; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; }
header.top { display: flex; justify-content: space-between; align-items: center;
  padding: .5rem 1rem; border-bottom: 1px solid var(--line); }
header.top form { margin: 0; }
main { max-width: 70rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: .2rem 0; } h2 { font-size: 1.15rem; }
h3 { font-size: 1rem; margin: .2rem 0; }
a { color: #36c; }
button.link { background: none; border: 0; color: #36c; cursor: pointer; padding: 0;
  font: inherit; }
a.button, button { padding: .35rem .8rem; border-radius: .3rem; border: 1px solid var(--line); }
table.runs { width: 100%; border-collapse: collapse; }
table.runs th, table.runs td { text-align: left; padding: .4rem; vertical-align: top;
  border-bottom: 1px solid var(--line); }
td.empty { color: var(--muted); }
form.filters { display: flex; gap: .5rem; flex-wrap: wrap; margin: .5rem 0 1rem; }
.meta, small { color: var(--muted); font-size: .85rem; }
.head { border: 1px solid var(--line); border-radius: .4rem; padding: .6rem .9rem; }
.headline { font-weight: 600; }
.plan ul { list-style: none; padding-left: .2rem; } .plan li.done { color: var(--muted); }
.plan li.in_progress { font-weight: 600; }
ol.timeline { list-style: none; padding: 0; }
li.event { border-left: 3px solid var(--line); padding: .3rem .8rem; margin: .6rem 0; }
li.event.outcome, li.event.exit { border-left-color: #36c; }
li.event.verification { border-left-color: #2a7; }
li.event[hidden] { display: none; }
pre { white-space: pre-wrap; word-break: break-word; background: #8881; padding: .5rem;
  border-radius: .3rem; overflow-x: auto; margin: .3rem 0; }
pre.command { font-weight: 600; }
pre.diff span { display: block; } pre.diff .add { background: var(--add); }
pre.diff .del { background: var(--del); } pre.diff .hunk, pre.diff .file { color: var(--muted); }
.say { white-space: pre-wrap; }
details summary { cursor: pointer; color: var(--muted); }
input[type=search] { width: 100%; padding: .4rem; margin: .3rem 0; }
.error { color: #c33; }
@media (max-width: 40rem) {
  table.runs thead { display: none; }
  table.runs tr { display: block; border-bottom: 1px solid var(--line); padding: .3rem 0; }
  table.runs td { display: inline-block; border: 0; padding: .1rem .4rem .1rem 0; }
  table.runs td:first-child { display: block; }
  main { padding: .6rem; }
}
"""

SCRIPT = """
"use strict";
(function () {
  const run = document.getElementById("run");
  const timeline = document.getElementById("timeline");
  const search = document.getElementById("search");
  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content.firstElementChild;
  }
  function filter() {
    const q = (search.value || "").toLowerCase();
    for (const li of timeline.children) {
      const hit = !q || li.textContent.toLowerCase().includes(q);
      li.hidden = !hit;
      if (q && hit) for (const d of li.querySelectorAll("details")) d.open = true;
    }
  }
  if (search) search.addEventListener("input", filter);
  if (!run || run.dataset.live !== "yes" || !window.EventSource) return;
  const url = "/runs/" + run.dataset.run + "/events?after=" + encodeURIComponent(run.dataset.after);
  const source = new EventSource(url);
  source.addEventListener("event", (m) => {
    const node = fragment(JSON.parse(m.data).html);
    if (node && !document.getElementById(node.id)) { timeline.appendChild(node); filter(); }
  });
  source.addEventListener("plan", (m) => {
    const node = fragment(JSON.parse(m.data).html);
    const old = document.getElementById("plan");
    if (node && old) old.replaceWith(node);
  });
  source.addEventListener("header", (m) => {
    const node = fragment(JSON.parse(m.data).html);
    const old = document.getElementById("header");
    if (node && old) old.replaceWith(node);
  });
  source.addEventListener("end", () => { source.close(); run.dataset.live = "no"; });
})();
"""
