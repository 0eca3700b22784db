"""Repeat suppression and resolution decided from stored alert state."""

from __future__ import annotations

from batchalert.alerts import AlertRenderer, build_alerts
from batchalert.config import RuleConfig
from batchalert.rules import RunAggregator
from batchalert.state import AlertState, plan_notifications
from tests.frames import access, frame

HOUR = 3600.0
NOW = 1_700_000_000.0


def alerts_for(paths: list[str]):  # type: ignore[no-untyped-def]
    aggregator = RunAggregator([RuleConfig()])
    aggregator.add(frame([access(path=p) for p in paths]))
    return build_alerts(aggregator.groups(), "c1", AlertRenderer())


def states_after(alerts, now: float) -> dict[str, AlertState]:  # type: ignore[no-untyped-def]
    plan = plan_notifications(alerts, {}, now, HOUR, HOUR)
    return {k: v for k, v in plan.updates.items() if v is not None}


def test_first_run_sends_everything() -> None:
    alerts = alerts_for(["/a", "/b"])

    plan = plan_notifications(alerts, {}, NOW, HOUR, HOUR)

    assert len(plan.fresh) == 2
    assert plan.suppressed == 0
    assert plan.resolved == []
    assert set(plan.updates) == {a.fingerprint for a in alerts}


def test_repeat_within_realert_is_suppressed_for_people() -> None:
    alerts = alerts_for(["/a"])
    states = states_after(alerts, NOW)

    plan = plan_notifications(alerts_for(["/a"]), states, NOW + HOUR - 1, HOUR, HOUR)

    assert plan.fresh == []
    assert plan.suppressed == 1
    assert len(plan.for_alertmanager()) == 1
    assert plan.for_people() == []


def test_repeat_after_realert_is_sent_again() -> None:
    states = states_after(alerts_for(["/a"]), NOW)

    plan = plan_notifications(alerts_for(["/a"]), states, NOW + HOUR, HOUR, HOUR)

    assert len(plan.fresh) == 1


def test_suppressed_repeat_keeps_last_sent_time() -> None:
    alerts = alerts_for(["/a"])
    states = states_after(alerts, NOW)

    plan = plan_notifications(alerts, states, NOW + 60, HOUR, HOUR)

    state = plan.updates[alerts[0].fingerprint]
    assert state is not None
    assert state.last_sent_at == NOW
    assert state.last_match_at == NOW + 60


def test_quiet_alert_resolves_after_resolve_after() -> None:
    states = states_after(alerts_for(["/a", "/b"]), NOW)

    early = plan_notifications(alerts_for(["/b"]), states, NOW + HOUR - 1, HOUR, HOUR)
    late = plan_notifications(alerts_for(["/b"]), states, NOW + HOUR, HOUR, HOUR)

    assert early.resolved == []
    assert [a.labels["path"] for a in late.resolved] == ["/a"]
    resolved = late.resolved[0]
    assert resolved.status == "resolved"
    assert resolved.to_dict()["status"] == "resolved"
    assert late.updates[resolved.fingerprint] is None
    assert resolved in late.for_people()
    assert resolved in late.for_alertmanager()


def test_state_round_trips_through_json() -> None:
    alerts = alerts_for(["/a"])
    state = states_after(alerts, NOW)[alerts[0].fingerprint]

    again = AlertState.from_json(state.fingerprint, state.to_json())

    assert again == state
