"""`top`'s keys as a terminal delivers them: several in one read, so textual queues them all
before the first one's action has run (tests/incus/test_top.py drives the same view in tmux
against a live daemon; these pin the key handling without one)."""

from __future__ import annotations

import asyncio

import pytest
from textual import events

from coi_sentinel.report.tui import ProcessTree, TopApp
from unit.report.test_live import status

pytestmark = pytest.mark.unit


class Answers:
    """The daemon's answers the view asks for: a status that grows with each call, no process."""

    on_item = None

    def __init__(self) -> None:
        self.calls = 0

    def status(self) -> dict:
        self.calls += 1
        return status(self.calls)

    def processes(self, name: str) -> list[dict]:
        return []

    def follow(self) -> None:
        pass

    def close(self) -> None:
        pass


def burst(app: TopApp, *keys: tuple[str, str | None]) -> None:
    """Keys handed to the app's driver at once, as one read from the terminal gives them."""
    for key, char in keys:
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


def typed(text: str) -> list[tuple[str, str]]:
    return [("slash" if c == "/" else c, c) for c in text]


def drive(check) -> None:
    async def main() -> None:
        app = TopApp(Answers(), interval=60)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await check(app, pilot)
    asyncio.run(main())


def test_text_typed_right_after_the_slash_is_the_filter() -> None:
    async def check(app: TopApp, pilot) -> None:
        burst(app, ("slash", "/"), *typed("zzz"), ("enter", "\r"))
        await pilot.pause(0.2)
        assert app.text_filter == "zzz"
        assert app.visible() == [] and len(app.screen_stack) == 1     # enter did not open the tree
        burst(app, ("slash", "/"), *typed("watch"), ("enter", "\r"))
        await pilot.pause(0.2)
        assert [s.name for s in app.visible()] == ["watch-host"]
    drive(check)


def test_a_slash_in_the_open_box_is_text_and_escape_clears() -> None:
    async def check(app: TopApp, pilot) -> None:
        burst(app, ("slash", "/"), *typed("a/b"))
        await pilot.pause(0.2)
        assert app.query_one("#filter").value == "a/b"
        burst(app, ("escape", "\x1b"))
        await pilot.pause(0.2)
        assert app.text_filter == "" and len(app.visible()) == 2
    drive(check)


def test_the_slash_on_the_process_tree_does_not_open_the_filter() -> None:
    async def check(app: TopApp, pilot) -> None:
        await pilot.press("enter")
        assert isinstance(app.screen, ProcessTree)
        burst(app, ("slash", "/"), *typed("zz"))
        await pilot.pause(0.2)
        assert isinstance(app.screen, ProcessTree)
        await pilot.press("escape")
        assert not app.query_one("#filter").has_class("shown") and app.text_filter == ""
    drive(check)
