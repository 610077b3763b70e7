"""Who refused a request (RBAC or which admission plugin or policy), and what the user can do about it.

A 403 from the API server may come from authorization (RBAC: the user lacks a
verb) or from admission, which runs after it: Pod Security, a ResourceQuota,
a LimitRange, a validating webhook (Gatekeeper, Kyverno...) or OpenShift's
SecurityContextConstraints. Each needs a different fix, and only RBAC's is
"grant the Role". The API server's message says which one refused, in words
that each plugin fixes in its source; this module reads them. Pure text rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.executors.kubernetes.capacity import quantity

ROLE_HINT = ("grant the harness's user the Role in k8s/base/role.yaml (kubectl apply -k k8s/nfs) or ask your "
             "cluster admin")
_RBAC = re.compile(r'\bcannot (\w+) resource "([^"]+)"|\bUser "[^"]*" cannot\b')
_POD_SECURITY = re.compile(r'violates PodSecurity "([^"]+)"')
_QUOTA = re.compile(r"exceeded quota: ([^,]+), requested: (.*), used: (.*), limited: (.*?)\.?$")
_QUOTA_ANY = re.compile(r"exceeded quota: ([^,\s]+)")
_LIMIT_RANGE = re.compile(r"(maximum|minimum) \S+ usage per (Container|Pod)|limit to request ratio|"
                          r"must be less than or equal to \S+ limit|LimitRange", re.IGNORECASE)
_WEBHOOK = re.compile(r'admission webhook "([^"]+)" denied the request')
_SCC = re.compile(r"security context constraint", re.IGNORECASE)


@dataclass(frozen=True)
class Refusal:
    """One refusal, read: its source in words, its hint, and (for a quota) whether one job could ever fit."""

    source: str
    hint: str
    rbac: bool = False
    quota_used_up: bool = False
    """A quota that one job fits in, used up by other work now: room comes back as that work ends."""


def read(message: str, namespace: str = "NAMESPACE") -> Refusal:
    """What the API server's refusal ``message`` says about who refused, and the fix for it."""
    if _RBAC.search(message):
        return Refusal("RBAC", ROLE_HINT, rbac=True)
    found = _POD_SECURITY.search(message)
    if found:
        return Refusal(f'Pod Security admission ("{found.group(1)}")',
                       "make the Job template (--k8s-template) meet the namespace's Pod Security standard "
                       "(docs/kubernetes.md)")
    found = _QUOTA.search(message) or _QUOTA_ANY.search(message)
    if found:
        return _quota(found, namespace)
    found = _WEBHOOK.search(message)
    if found:
        return Refusal(f'the admission webhook "{found.group(1)}" (a cluster policy)',
                       "change what the policy names in the Job template (--k8s-template) or the options that feed "
                       "it, or ask the policy's owner for an exception for namespace " + namespace)
    if _SCC.search(message):
        return Refusal("OpenShift's SecurityContextConstraints",
                       f"pass the --k8s-uid and --k8s-gid the project allows (oc describe project {namespace}: "
                       "openshift.io/sa.scc.uid-range) or ask for an SCC that allows them")
    if _LIMIT_RANGE.search(message):
        return Refusal("a LimitRange",
                       f"set --k8s-cpu and --k8s-memory within the namespace's LimitRange (kubectl -n {namespace} "
                       "describe limitrange)")
    return Refusal("admission", "fix what the message names, or ask your cluster admin")


def _quota(found: re.Match, namespace: str) -> Refusal:
    name = found.group(1).strip()
    source = f"ResourceQuota {name}"
    if found.re is _QUOTA:
        requested, limited = _resources(found.group(2)), _resources(found.group(4))
        too_big = [key for key, amount in requested.items() if key in limited and amount > limited[key]]
        counts = [key for key in too_big if key.startswith("count/") or key in ("pods", "jobs")]
        if counts:
            return Refusal(source, f"the quota allows no {', '.join(counts)} at all: ask for a larger quota "
                                   f"(kubectl -n {namespace} describe resourcequota {name})")
        if too_big:
            return Refusal(source, f"one job needs more {', '.join(too_big)} than the whole quota allows: lower "
                                   "--k8s-cpu, --k8s-memory or --k8s-gpus, or ask for a larger quota (kubectl -n "
                                   f"{namespace} describe resourcequota {name})")
    return Refusal(source, f"the quota is used up by other work now: lower --parallel, wait for that work to end, or "
                           f"ask for a larger quota (kubectl -n {namespace} describe resourcequota {name})",
                   quota_used_up=True)


def _resources(text: str) -> dict[str, float]:
    found = {}
    for item in text.split(","):
        key, _, value = item.strip().partition("=")
        amount = quantity(value)
        if key and amount is not None:
            found[key] = amount
    return found
