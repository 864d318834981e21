"""How the drill waits on one object (DrillKube.watch_until): list, then watch from the list's
resourceVersion, and fall back to the backing-off poll when the watch breaks or ends early. A
fake DynamicClient records what was asked; the clock and sleep are the test's."""

from __future__ import annotations

import json

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.velero import drill_kube


class Response:
    def __init__(self, body):
        self.data = json.dumps(body).encode()


class Resource:
    def __init__(self, client):
        self.client = client

    def get(self, **kwargs):
        self.client.calls.append(("get", kwargs))
        if kwargs.get("name"):  # the poll's get
            state = self.client.states.pop(0) if self.client.states else self.client.last
            self.client.last = state
            return state
        return Response({"metadata": {"resourceVersion": "41"}, "items": self.client.listed})


class Resources:
    def __init__(self, client):
        self.client = client

    def get(self, api_version, kind):
        return Resource(self.client)


class FakeDynamic:
    def __init__(self, listed=(), events=(), watch_error=None, states=()):
        self.listed = list(listed)
        self.events = list(events)
        self.watch_error = watch_error
        self.states = list(states)
        self.last = None
        self.calls = []
        self.closed = False
        self.resources = Resources(self)

    def watch(self, resource, **kwargs):
        self.calls.append(("watch", kwargs))
        if self.watch_error:
            raise self.watch_error

        def stream():
            try:
                yield from self.events
            finally:
                self.closed = True

        return stream()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def phase(value):
    return {"metadata": {"name": "r"}, "status": {"phase": value}}


def done_phase(obj):
    status = (obj or {}).get("status") or {}
    return status if status.get("phase") == "Completed" else None


def kube_for(dynamic):
    clock = Clock()
    return drill_kube.DrillKube(dynamic, sleep=clock.sleep, clock=clock), clock


def test_already_done_in_the_list_no_watch_is_opened():
    dynamic = FakeDynamic(listed=[phase("Completed")])
    kube = kube_for(dynamic)[0]
    assert kube.watch_until("velero.io/v1", "Restore", "velero", "r", done_phase, 60, "Restore r") == {
        "phase": "Completed"
    }
    assert [c[0] for c in dynamic.calls] == ["get"]
    assert dynamic.calls[0][1]["field_selector"] == "metadata.name=r"


def test_watch_starts_at_the_lists_version_skips_bookmarks_and_closes_its_stream():
    events = [
        {"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "42"}}},
        {"type": "MODIFIED", "raw_object": phase("InProgress")},
        {"type": "MODIFIED", "raw_object": phase("Completed")},
        {"type": "MODIFIED", "raw_object": phase("never read")},
    ]
    dynamic = FakeDynamic(listed=[phase("New")], events=events)
    kube = kube_for(dynamic)[0]
    assert kube.watch_until("velero.io/v1", "Restore", "velero", "r", done_phase, 60, "Restore r") == {
        "phase": "Completed"
    }
    watch = next(kwargs for call, kwargs in dynamic.calls if call == "watch")
    assert watch["resource_version"] == "41" and watch["name"] == "r" and watch["namespace"] == "velero"
    assert dynamic.closed


def test_deleted_event_is_reported_as_gone():
    dynamic = FakeDynamic(
        listed=[{"metadata": {"name": "ns"}}], events=[{"type": "DELETED", "raw_object": {"metadata": {"name": "ns"}}}]
    )
    kube = kube_for(dynamic)[0]
    assert kube.watch_until("v1", "Namespace", None, "ns", lambda obj: obj is None, 60, "ns") is True


@pytest.mark.parametrize(
    "dynamic",
    [
        pytest.param(FakeDynamic(listed=[phase("New")], watch_error=RuntimeError("stream broke")), id="watch-fails"),
        pytest.param(FakeDynamic(listed=[phase("New")], events=[]), id="watch-ends-early"),
    ],
)
def test_a_broken_or_short_watch_falls_back_to_polling(dynamic):
    dynamic.states = [phase("InProgress"), phase("InProgress"), phase("Completed")]
    kube, clock = kube_for(dynamic)
    assert kube.watch_until("velero.io/v1", "Restore", "velero", "r", done_phase, 60, "Restore r") == {
        "phase": "Completed"
    }
    gets = [kwargs for call, kwargs in dynamic.calls if call == "get" and kwargs.get("name")]
    assert len(gets) == 3
    assert 0 < clock.now < 1  # two back-off sleeps of the poll, not a fixed second each


def test_timeout_names_what_it_waited_for():
    dynamic = FakeDynamic(listed=[phase("New")], watch_error=RuntimeError("no watch"), states=[phase("InProgress")])
    kube, clock = kube_for(dynamic)
    with pytest.raises(drill_kube.DrillStepError, match="timed out after 5 s waiting for Restore r"):
        kube.watch_until("velero.io/v1", "Restore", "velero", "r", done_phase, 5, "Restore r")
    assert clock.now >= 5
