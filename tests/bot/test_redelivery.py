"""Which failed deliveries are asked for again after downtime."""

from __future__ import annotations

from bot.redelivery import Attempt, _next_cursor, to_redeliver

SINCE = 1_000.0


def test_a_guid_whose_every_attempt_failed_is_redelivered_once_newest_attempt() -> None:
    attempts = [
        Attempt(1, "a", 1_100.0, 0),
        Attempt(2, "a", 1_200.0, 503),
        Attempt(3, "b", 1_150.0, 202),
    ]
    assert to_redeliver(attempts, SINCE) == [2]


def test_a_guid_that_once_succeeded_is_left_alone() -> None:
    attempts = [Attempt(1, "a", 1_100.0, 500), Attempt(2, "a", 1_300.0, 200)]
    assert to_redeliver(attempts, SINCE) == []


def test_failures_from_before_the_last_time_we_were_up_are_left_alone() -> None:
    attempts = [Attempt(1, "old", 900.0, 0), Attempt(2, "old", 1_100.0, 0)]
    assert to_redeliver(attempts, SINCE) == []


def test_several_failed_guids_are_all_redelivered_in_id_order() -> None:
    attempts = [
        Attempt(9, "x", 1_500.0, 0),
        Attempt(4, "y", 1_400.0, 400),
        Attempt(7, "z", 1_450.0, 201),
    ]
    assert to_redeliver(attempts, SINCE) == [4, 9]


def test_the_next_cursor_comes_from_the_link_header() -> None:
    link = (
        '<http://gh/api/v3/app/hook/deliveries?per_page=100&cursor=v1_12345>; rel="next", '
        '<http://gh/api/v3/app/hook/deliveries?per_page=100>; rel="first"'
    )
    assert _next_cursor(link) == "v1_12345"
    assert _next_cursor('<http://gh/x?per_page=2>; rel="first"') is None
    assert _next_cursor("") is None
