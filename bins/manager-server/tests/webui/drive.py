"""Drives the Backend.AI WebUI (served by backend.ai-webserver in front of our manager) in Debian's
headless Chromium: logs in, visits every page of the sidebar, and writes one screenshot per page.

Prints one JSON object on stdout: for every page its path, title, the error toasts it showed, the
requests to the manager that failed, and whether it rendered the WebUI's error page. The Rust test
(tests/it/webui.rs) decides what is a failure; this script only fails when it cannot log in or find
the sidebar.

Usage: drive.py --url URL --email E --password P --screenshots DIR [--chromium PATH]
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

# Requests the WebUI sends through the webserver to the manager, and the webserver's own login
# routes; a failing answer on any of these is reported.
MANAGER_PATHS = re.compile(r"/(func|pipeline)/|/server/(login|logout|token|login-check)")
GRAPHQL_PATH = re.compile(r"/func/admin/gql")
# What the WebUI's React error boundary shows instead of a page that threw.
ERROR_BOUNDARY_TEXT = "An error has occurred."
SETTLE_MS = 2500
PAGE_TIMEOUT_MS = 30000


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--screenshots", required=True, type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    return parser.parse_args()


class Recorder:
    """Collects failed manager requests and console errors, page by page."""

    def __init__(self):
        self.failures = []
        self.console_errors = []

    def take(self):
        failures, errors = self.failures, self.console_errors
        self.failures, self.console_errors = [], []
        return failures, errors

    def on_response(self, response):
        if GRAPHQL_PATH.search(response.url) and response.status < 400:
            self.graphql_errors(response)
        if MANAGER_PATHS.search(response.url) and response.status >= 400:
            body = ""
            try:
                body = response.text()[:300]
            except Exception as error:  # the body may be gone once the page moved on
                body = f"<body unavailable: {error}>"
            self.failures.append(
                {
                    "method": response.request.method,
                    "url": response.url,
                    "status": response.status,
                    "request": (response.request.post_data or "")[:300],
                    "body": body,
                }
            )

    def graphql_errors(self, response):
        """A GraphQL answer is 200 even when its query failed: its `errors` count as a failure."""
        try:
            answer = response.json()
        except Exception:
            return
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            self.failures.append(
                {
                    "method": response.request.method,
                    "url": response.url,
                    "status": response.status,
                    "request": (response.request.post_data or "")[:300],
                    "body": json.dumps(errors)[:300],
                }
            )

    def on_request_failed(self, request):
        if MANAGER_PATHS.search(request.url):
            self.failures.append(
                {
                    "method": request.method,
                    "url": request.url,
                    "status": None,
                    "request": (request.post_data or "")[:300],
                    "body": request.failure or "",
                }
            )

    def on_console(self, message):
        if message.type == "error":
            self.console_errors.append(message.text[:300])


def toasts(page):
    """The texts of the notifications on screen (antd notifications and the Lit snackbar)."""
    return page.evaluate(
        """() => {
        const found = [];
        const visit = (root) => {
            root.querySelectorAll('.ant-notification-notice, .ant-message-notice, mwc-snackbar[open]')
                .forEach((node) => {
                    const error = node.querySelector('.ant-notification-notice-icon-error, '
                        + '.anticon-close-circle, .ant-message-error') !== null;
                    found.push({text: node.innerText.trim().slice(0, 300), error});
                });
            root.querySelectorAll('*').forEach((node) => { if (node.shadowRoot) visit(node.shadowRoot); });
        };
        visit(document);
        return found;
    }"""
    )


def dismiss_toasts(page):
    page.evaluate(
        """() => document.querySelectorAll('.ant-notification-notice-close')
            .forEach((button) => button.click())"""
    )


def login(page, args):
    page.goto(args.url, timeout=PAGE_TIMEOUT_MS)
    page.locator("#id_user_id").first.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
    # The fields are mwc-textfield elements: type into the input inside each.
    page.locator("#id_user_id input").first.fill(args.email)
    page.locator("#id_password input").first.fill(args.password)
    page.locator("#login-button").first.click()


def sidebar_paths(page):
    """The sidebar's page links, in order: the antd menu items' keys."""
    page.locator(".ant-layout-sider .ant-menu-item").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.ant-layout-sider .ant-menu-item'))
            .map((item) => item.getAttribute('data-menu-id') || '')
            .map((id) => id.replace(/^.*-(?=[^-]+$)/, ''))"""
    )


def main():
    args = parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    recorder = Recorder()
    report = {"login": None, "pages": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on("response", recorder.on_response)
        page.on("requestfailed", recorder.on_request_failed)
        page.on("console", recorder.on_console)
        login(page, args)
        try:
            items = sidebar_paths(page)
        except Exception as error:
            page.screenshot(path=str(args.screenshots / "login-failed.png"), full_page=True)
            failures, errors = recorder.take()
            report["login"] = {
                "error": str(error)[:500],
                "toasts": toasts(page),
                "failures": failures,
                "console": errors,
            }
            print(json.dumps(report))
            browser.close()
            return 1
        page.wait_for_timeout(SETTLE_MS)
        failures, errors = recorder.take()
        report["login"] = {"toasts": toasts(page), "failures": failures, "console": errors}
        dismiss_toasts(page)
        report["sidebar"] = items
        for index, item in enumerate(items):
            menu = page.locator(".ant-layout-sider .ant-menu-item").nth(index)
            menu.click()
            try:
                page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
            except Exception:
                pass
            page.wait_for_timeout(SETTLE_MS)
            path = page.url.split("?", 1)[0].split("#", 1)[0]
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
            name = f"{index:02d}-{item or 'page'}"
            page.screenshot(path=str(args.screenshots / f"{name}.png"), full_page=True)
            failures, errors = recorder.take()
            error_page = (
                path.startswith("/error")
                or page.get_by_text(ERROR_BOUNDARY_TEXT, exact=True).count() > 0
            )
            report["pages"].append(
                {
                    "item": item,
                    "path": path,
                    "title": page.title(),
                    "toasts": toasts(page),
                    "failures": failures,
                    "console": errors,
                    "error_page": error_page,
                }
            )
            dismiss_toasts(page)
            if error_page:
                # The error boundary stays up across client-side navigation: start the next page
                # from a fresh load, as a user pressing "Reload the page" would.
                page.reload(wait_until="networkidle", timeout=PAGE_TIMEOUT_MS)
                page.wait_for_timeout(SETTLE_MS)
                recorder.take()
                dismiss_toasts(page)
        browser.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
