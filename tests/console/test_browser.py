"""The console in a real browser: Debian's chromium (installed by `make install`) driven by
playwright, against a real daemon serving `--console`. Each page visited also passes
axe-core's accessibility checks (vendored in vendor/) with no serious or critical violation.

`TANDEM_SCREENSHOT=docs/console.png` makes the suite save a run's page there (the README's
picture); without it, no tracked file is written."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, Project, eventually, tandem
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tandem.testing.anthropic_api import AnthropicStandIn
from tandem.testing.replies import Reply

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `playwright install` is never run
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
GREET = """\
def handler(trigger, tools, virtual_files, subagent):
    name = trigger["name"]
    return {"count": tools.state.increment(key=f"greeted:{name}")}
"""


class Console:
    def __init__(self, daemon: Daemon, url: str, model: AnthropicStandIn) -> None:
        self.daemon = daemon
        self.sign_in_url = url
        self.base = url.split("/?")[0]
        self.model = model

    def finished(self, run_id: str) -> Any:
        for _ in self.daemon.client.watch(run_id):
            pass
        return self.daemon.client.run(run_id)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    project = Project(tmp_path_factory.mktemp("browser") / "project")
    project.workflow("greet", script=GREET, prompt="Greet them.", tools=["state.*"], shadow="llm")
    project.workflow(
        "quick", script="def handler(trigger, tools, virtual_files, subagent):\n    return 1\n"
    )
    project.workflow(
        "held",
        script=GREET,
        tools=["state.*"],
        approvals={"script": ["state.increment"], "timeout_s": 30},
    )
    with AnthropicStandIn() as model:
        daemon = Daemon(project, "--console", "127.0.0.1:0", env=model.env)
        try:
            shown = tandem(project, "console")
            assert shown.returncode == 0, shown.stderr
            yield Console(daemon, shown.stdout.strip(), model)
        finally:
            daemon.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # As root (CI's containers) chromium will not start with its sandbox on ("Running as
        # root without --no-sandbox is not supported"); the pages it opens are our own.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    signed = context.new_page()
    signed.goto(console.sign_in_url)
    expect(signed).to_have_url(f"{console.base}/runs")
    yield signed
    context.close()


def accessible(page: Page) -> None:
    """axe-core's checks on the page as shown: no serious or critical violation."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run()).violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target)}))"""
    )
    assert found == [], f"{page.url}: {found}"


def test_a_new_run_appears_live_and_its_calls_expand(page: Page, console: Console) -> None:
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    accessible(page)
    run_id = console.daemon.client.trigger("greet", {"name": "Ada"}, None)
    row = page.locator(f"#run-{run_id}")
    expect(row).to_be_visible()  # pushed by the runs stream: the page was not reloaded
    expect(row).to_contain_text("succeeded")
    # A run that ends just after it starts: its last change still reaches the page.
    quick = page.locator(f"#run-{console.daemon.client.trigger('quick', None, None)}")
    expect(quick).to_contain_text("succeeded")
    row.get_by_role("link", name=run_id).click()
    expect(page).to_have_url(f"{console.base}/runs/{run_id}")
    call = page.locator(".entry.call details").first
    expect(call).not_to_have_attribute("open", "")
    call.locator("summary").click()
    expect(call).to_have_attribute("open", "")
    expect(call).to_contain_text("greeted:Ada")
    accessible(page)
    if target := os.environ.get("TANDEM_SCREENSHOT"):
        page.screenshot(path=target)


def test_a_shadow_compares_with_its_primary(page: Page, console: Console) -> None:
    console.model.add(
        Reply.tool_use(("state__increment", {"key": "greeted:Bo"})), Reply.text("done")
    )
    primary = console.finished(console.daemon.client.trigger("greet", {"name": "Bo"}, None))
    client = console.daemon.client

    def shadow() -> Any:
        found = [s for s in client.runs("greet", "", 10, mode="shadow") if s.source_run]
        found = [s for s in found if s.source_run == primary.id and s.plan_diff is not None]
        return found[0] if found else None

    assert eventually(lambda: shadow() is not None), console.daemon.log[-20:]
    page.goto(f"{console.base}/runs/{shadow().id}")
    page.get_by_role("link", name=f"compare with {primary.id}").click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    plan = page.locator("tr.plan").first
    cells = plan.locator("td")
    expect(cells.nth(1)).to_contain_text("state.increment")  # the primary's call
    expect(cells.nth(2)).to_contain_text("state.increment")  # the shadow's, planned
    expect(page.locator("thead").last).to_contain_text(primary.id)
    accessible(page)


def test_a_held_call_approved_from_the_page_lets_the_run_finish(
    page: Page, console: Console
) -> None:
    run_id = console.daemon.client.trigger("held", {"name": "Cy"}, None)
    assert eventually(lambda: console.daemon.client.run(run_id).status == "waiting")
    page.goto(f"{console.base}/approvals")
    held = page.locator(f"[id^=held-{run_id}-]")
    expect(held).to_contain_text("state.increment")
    accessible(page)
    held.get_by_role("button", name="Approve").click()
    expect(held).to_have_count(0)
    page.goto(f"{console.base}/runs/{run_id}")
    expect(page.locator("#status")).to_have_text("succeeded")


def test_without_the_token_only_the_sign_in_page_shows(browser: Browser, console: Console) -> None:
    run_id = console.finished(console.daemon.client.trigger("greet", {"name": "Di"}, None)).id
    context = browser.new_context()
    stranger = context.new_page()
    for path in ("/runs", f"/runs/{run_id}", "/approvals", f"/?token={'0' * 32}"):
        stranger.goto(console.base + path)
        expect(stranger.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(stranger.locator("body")).not_to_contain_text(run_id)
        expect(stranger.get_by_role("navigation")).to_have_count(0)
    accessible(stranger)
    context.close()


def test_a_cross_site_post_is_refused(page: Page, console: Console) -> None:
    run_id = console.finished(console.daemon.client.trigger("greet", {"name": "Eve"}, None)).id
    # Even a page that learnt the session's CSRF token is refused: its Origin is not ours.
    csrf = json.loads(page.locator("body").get_attribute("hx-headers") or "{}")["X-CSRF-Token"]
    forged = (
        f'<form method="post" action="{console.base}/runs/{run_id}/flag">'
        f'<input name="csrf" value="{csrf}"><input name="reason" value="forged"></form>'
        "<script>document.forms[0].submit()</script>"
    ).encode()

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(forged)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with page.expect_response(f"{console.base}/runs/{run_id}/flag") as posted:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert posted.value.request.method == "POST"
        assert posted.value.status == 403
    finally:
        server.shutdown()
        server.server_close()
    assert console.daemon.client.run(run_id).flag is None


def test_the_workflows_and_ledger_pages_pass_the_accessibility_check(
    page: Page, console: Console
) -> None:
    console.finished(console.daemon.client.trigger("greet", {"name": "Lin"}, None))
    for path, heading in (("/workflows", "Workflows"), ("/ledger", "Ledger")):
        page.goto(console.base + path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        accessible(page)
