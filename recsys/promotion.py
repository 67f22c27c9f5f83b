"""The quality gate of ``recsys promote``: a version must beat popularity and the champion.

A registered version's run records its test metrics, the popularity baseline evaluated on
the same split (``recsys.experiment.BASELINE_PREFIX``) and the fingerprints of its data and
protocol. :func:`check_promotion` refuses a version

- whose test NDCG@K is below its own run's popularity baseline, or
- whose test NDCG@K is below the current champion's, when both runs were evaluated on the
  same data and protocol (equal ``data_fingerprint`` and ``protocol_fingerprint`` tags, so
  the same test split). On different data the comparison is not possible: that is said, and
  allowed.

``recsys promote --force`` promotes anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recsys.experiment import BASELINE_PREFIX

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class VersionQuality:
    """What a version's run recorded about its test quality."""

    version: str
    run_id: str
    k: int | None
    ndcg: float | None
    baseline_ndcg: float | None
    data_fingerprint: str | None
    protocol_fingerprint: str | None

    @property
    def label(self) -> str:
        return f"version {self.version}"

    def comparable_with(self, other: VersionQuality) -> bool:
        """Same data, same protocol and K: the two test NDCGs come from one split."""
        return (
            self.data_fingerprint is not None
            and self.protocol_fingerprint is not None
            and self.data_fingerprint == other.data_fingerprint
            and self.protocol_fingerprint == other.protocol_fingerprint
            and self.k == other.k
        )


def version_quality(client: MlflowClient, name: str, version: str) -> VersionQuality:
    """Read a registered version's test NDCG, baseline and fingerprints from its run."""
    mv = client.get_model_version(name, version)
    run = client.get_run(str(mv.run_id))
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    k = int(params["protocol.k"]) if "protocol.k" in params else None
    return VersionQuality(
        version=str(mv.version),
        run_id=str(mv.run_id),
        k=k,
        ndcg=metrics.get(f"test_ndcg_at_{k}") if k is not None else None,
        baseline_ndcg=metrics.get(f"{BASELINE_PREFIX}ndcg"),
        data_fingerprint=tags.get("data_fingerprint"),
        protocol_fingerprint=tags.get("protocol_fingerprint"),
    )


@dataclass
class PromotionCheck:
    """The gate's verdict: ``refusals`` (why not) and ``notes`` (what was not compared)."""

    candidate: VersionQuality
    champion: VersionQuality | None
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.refusals


def check_promotion(client: MlflowClient, name: str, version: str, alias: str) -> PromotionCheck:
    """Compare ``version`` with its popularity baseline and with the ``alias`` holder."""
    from mlflow.exceptions import MlflowException

    candidate = version_quality(client, name, version)
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        current = None
    champion = None
    if current is not None and str(current.version) != candidate.version:
        champion = version_quality(client, name, str(current.version))
    check = PromotionCheck(candidate, champion)
    k = candidate.k
    if candidate.ndcg is None:
        check.notes.append(f"{candidate.label} has no test NDCG recorded: quality not checked")
        return check
    if candidate.baseline_ndcg is None:
        check.notes.append(f"{candidate.label}'s run has no popularity baseline recorded")
    elif candidate.ndcg < candidate.baseline_ndcg:
        check.refusals.append(
            f"{candidate.label} scores test NDCG@{k} {candidate.ndcg:.4f}, below the "
            f"popularity baseline's {candidate.baseline_ndcg:.4f} on the same split"
        )
    if champion is None:
        return check
    if champion.ndcg is None or not candidate.comparable_with(champion):
        check.notes.append(
            f"the current {alias} ({champion.label}) was evaluated on other data or another "
            "protocol: comparing them is not possible"
        )
    elif candidate.ndcg < champion.ndcg:
        check.refusals.append(
            f"{candidate.label} scores test NDCG@{k} {candidate.ndcg:.4f}, below the current "
            f"{alias} ({champion.label}: {champion.ndcg:.4f}) on the same data and protocol"
        )
    return check
