"""Deriving a workload name from a pod name, as Kubernetes controllers generate pod names."""

from __future__ import annotations

import polars as pl

# Characters of Kubernetes' generated name suffixes (k8s.io/apimachinery rand.String and
# SafeEncodeString): no vowels and no 0, 1 or 3, so that suffixes never spell words.
_SUFFIX = "[bcdfghjklmnpqrstvwxz2456789]"

# Deployment: <deployment>-<pod-template-hash>-<5 random>; the hash has up to 10 characters.
_DEPLOYMENT = rf"^(.+)-{_SUFFIX}{{6,10}}-{_SUFFIX}{{5}}$"
# CronJob: <cronjob>-<scheduled time in minutes>-<5 random>.
_CRONJOB = rf"^(.+)-\d{{8,}}-{_SUFFIX}{{5}}$"
# StatefulSet: <statefulset>-<ordinal>.
_STATEFULSET = r"^(.+)-\d+$"
# DaemonSet, Job and ReplicaSet without a template hash: <owner>-<5 random>.
_SINGLE_SUFFIX = rf"^(.+)-{_SUFFIX}{{5}}$"


def workload_expr(pod: pl.Expr) -> pl.Expr:
    """Return the workload of each pod name; a bare pod name stands for itself.

    `wordpress-v1-f54f697c5-hdn2z` gives `wordpress-v1`, `mysql-0` gives `mysql`,
    `fluent-bit-x7k2p` gives `fluent-bit`, and `debug` stays `debug`.
    """
    return pl.coalesce(
        pod.str.extract(_DEPLOYMENT, 1),
        pod.str.extract(_CRONJOB, 1),
        pod.str.extract(_STATEFULSET, 1),
        pod.str.extract(_SINGLE_SUFFIX, 1),
        pod,
    )
