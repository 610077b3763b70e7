"""How many Jobs fit, and who refused a request: pure rules over the JSON and messages the API server gives.

Hand-written ResourceQuota and Node objects and refusal messages in the words
the API server's admission plugins use (quota, LimitRange, Pod Security,
webhooks, OpenShift's SCCs, RBAC); no cluster stands in.
"""
from __future__ import annotations

import pytest

from harness.executors.kubernetes import admission, capacity
from harness.executors.kubernetes.errors import error_for
from harness.executors.kubernetes.options import Toleration

NEEDS = capacity.JobNeeds(cpu=2.0, memory=4 * 2**30)


@pytest.mark.parametrize(("text", "value"), [("2", 2.0), ("500m", 0.5), ("4Gi", 4 * 2**30), ("1e3", 1000.0),
                                              ("1.5k", 1500.0), ("x", None), ("5Qi", None)])
def test_quantities_are_read_as_kubernetes_writes_them(text, value):
    assert capacity.quantity(text) == value


def test_the_quota_with_the_least_room_left_decides():
    quotas = [
        {"metadata": {"name": "compute"}, "status": {"hard": {"requests.cpu": "10", "limits.memory": "64Gi"},
                                                      "used": {"requests.cpu": "3500m", "limits.memory": "8Gi"}}},
        {"metadata": {"name": "objects"}, "status": {"hard": {"count/jobs.batch": "4"},
                                                      "used": {"count/jobs.batch": "2"}}},
        {"metadata": {"name": "scoped"}, "spec": {"scopes": ["Terminating"]},
         "status": {"hard": {"pods": "0"}, "used": {}}},  # may not apply to these pods: not read
    ]
    room = capacity.quota_room(quotas, NEEDS)
    assert room.jobs == 2 and room.limit.startswith("ResourceQuota objects: count/jobs.batch 2 of 4 left")
    assert capacity.quota_room([], NEEDS).jobs is None


def test_nodes_count_only_where_the_pods_may_go():
    nodes = [
        {"metadata": {"labels": {"kubernetes.io/arch": "amd64", "pool": "gpu"}},
         "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
         "status": {"allocatable": {"cpu": "8", "memory": "30Gi", "pods": "110", "nvidia.com/gpu": "2"}}},
        {"metadata": {"labels": {"kubernetes.io/arch": "amd64", "pool": "gpu"}}, "spec": {"unschedulable": True},
         "status": {"allocatable": {"cpu": "8", "memory": "30Gi", "pods": "110", "nvidia.com/gpu": "2"}}},
        {"metadata": {"labels": {"kubernetes.io/arch": "arm64", "pool": "gpu"}}, "spec": {},
         "status": {"allocatable": {"cpu": "8", "memory": "30Gi", "pods": "110", "nvidia.com/gpu": "2"}}},
    ]
    gpu = capacity.JobNeeds(2.0, 4 * 2**30, 1, "nvidia.com/gpu", (("pool", "gpu"),), ("amd64",),
                            (Toleration("nvidia.com/gpu", None, "NoSchedule"),))
    assert capacity.node_room(nodes, gpu).jobs == 2  # the tainted amd64 node, its 2 GPUs
    untolerated = capacity.JobNeeds(2.0, 4 * 2**30, 1, "nvidia.com/gpu", (("pool", "gpu"),), ("amd64",))
    assert capacity.node_room(nodes, untolerated).jobs == 0
    assert capacity.tightest(capacity.Room(None), capacity.Room(3, "a"), capacity.Room(1, "b")).limit == "b"


@pytest.mark.parametrize(("message", "source", "rbac", "waits"), [
    ('jobs.batch is forbidden: User "me" cannot create resource "jobs" in API group "batch" in the namespace "x"',
     "RBAC", True, False),
    ('pods "p" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true',
     'Pod Security admission ("restricted:latest")', False, False),
    (('pods "p" is forbidden: exceeded quota: compute, requested: requests.cpu=2, used: requests.cpu=7, limited: '
     'requests.cpu=8'), "ResourceQuota compute", False, True),
    (('pods "p" is forbidden: exceeded quota: compute, requested: requests.cpu=2, used: requests.cpu=0, limited: '
     'requests.cpu=1'), "ResourceQuota compute", False, False),
    (('admission webhook "validate.kyverno.svc-fail" denied the request: policy require-labels: label "team" is '
     'required'), 'the admission webhook "validate.kyverno.svc-fail" (a cluster policy)', False, False),
    ('pods "p" is forbidden: maximum memory usage per Container is 2Gi, but limit is 4Gi', "a LimitRange", False,
     False),
    ("pods \"p\" is forbidden: unable to validate against any security context constraint: []",
     "OpenShift's SecurityContextConstraints", False, False),
])
def test_a_refusal_names_who_refused(message, source, rbac, waits):
    """Issue 29 item 3: only RBAC's refusal is fixed by granting the Role."""
    refusal = admission.read(message, "kbench")
    assert (refusal.source, refusal.rbac, refusal.quota_used_up) == (source, rbac, waits)
    assert ("grant the harness's user the Role" in refusal.hint) is rbac


def test_a_403_for_quota_on_job_creation_gets_a_quota_hint():
    """Issue 29 item 3: on 4f05b5b every 403 said "grant the harness's user the Role"."""
    message = ('jobs.batch "j" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1, used: '
               'count/jobs.batch=5, limited: count/jobs.batch=5')
    error = error_for("create Job j", 403, "Forbidden", message, "https://k", "kbench")
    assert "(403 Forbidden by ResourceQuota jobs); the quota is used up by other work now: lower --parallel" in str(
        error)
    assert "grant" not in str(error) and error.refusal.quota_used_up and error.api_message == message


class Chunks:
    """Stands in for a streamed urllib3 response: its chunks as given."""

    def __init__(self, *chunks: bytes):
        self.chunks = chunks

    def stream(self, amt=None, decode_content=False):
        return iter(self.chunks)


def test_a_streamed_answer_is_split_into_lines_in_linear_time():
    """A followed log of 18 MB arriving as one chunk took the client's iter_resp_lines seconds (a copy per line)."""
    import time

    from harness.executors.kubernetes.client import iter_lines

    assert list(iter_lines(Chunks(b"a\nb", b"c\n\nd\n", b"partial"))) == ["a", "bc", "", "d"]
    big = b"".join(b"%06d %s\n" % (i, b"x" * 100) for i in range(150_000))  # 16 MB in one chunk
    started = time.perf_counter()
    lines = list(iter_lines(Chunks(big)))
    assert len(lines) == 150_000 and lines[-1].startswith("149999 ")
    assert time.perf_counter() - started < 2.0
