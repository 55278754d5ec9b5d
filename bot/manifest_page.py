"""The HTML pages of `qwen-fix app create`: the form that posts the manifest, the outcome pages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;line-height:1.5}"
    "button,a.button{font-size:1.1rem;padding:.6rem 1.2rem}code{background:#eee;padding:0 .2rem}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def register_page(action_url: str, manifest: Mapping[str, Any], account: str) -> str:
    """A form that POSTs the manifest to GitHub's "new app" page; the browser carries it there."""
    manifest_json = json.dumps(manifest, indent=2)
    return _page(
        "Register qwen-fix as a GitHub App",
        f"<p>This registers a new GitHub App on <strong>{escape(account)}</strong> from "
        f"the manifest below. GitHub asks you to confirm the name, then sends you back here "
        f"and qwen-fix saves the app's credentials to <code>.env</code>.</p>\n"
        f'<form action="{escape(action_url)}" method="post">\n'
        f'<input type="hidden" name="manifest" value="{escape(json.dumps(manifest))}">\n'
        f'<button type="submit">Register the GitHub App</button>\n</form>\n'
        f"<details><summary>Manifest</summary><pre>{escape(manifest_json)}</pre></details>",
    )


def installed_page(app_name: str, install_url: str, env_path: str) -> str:
    """The last page: credentials are saved; the app still needs installing on repositories."""
    return _page(
        f"{app_name} is registered",
        f"<p>Its credentials are saved in <code>{escape(env_path)}</code> "
        f"(readable by you only). You can close the command now.</p>\n"
        f"<p>Next, install the app on the repositories it should work on:</p>\n"
        f'<p><a class="button" href="{escape(install_url)}">Install {escape(app_name)}</a></p>',
    )


def failed_page(reason: str, *, waiting: bool = True) -> str:
    """Something went wrong on the way back from GitHub; say whether the command still waits."""
    next_step = (
        '<p><a href="/">Start again</a>; the command is still waiting.</p>'
        if waiting
        else "<p>The command has stopped.</p>"
    )
    return _page("The app was not registered", f"<p>{escape(reason)}</p>\n{next_step}")
