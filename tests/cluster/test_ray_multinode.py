"""`wbsrun run --cluster ray://ADDR` on a simulated multi-node Ray (`ray.cluster_utils.Cluster`:
a head and a second node, one CPU each, on this machine): one actor per node, the bundle
shipped to each, totals exact and equal to what the target served."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ray_kit import LOOPBACK, ledger_entries, quiet_ray_env, require_ray, run_cli
from wbsrun.target import TargetProcess

SCRIPT = """\
name: nodes
actions:
  fetch:
    component: http
    call: get
    with: {{url: "{url}/asset"}}
workflows:
  main:
    steps:
      - ref: fetch
load:
  scenarios:
    - name: visitors
      workflow: main
      user-count: 7
      iterations: 12
"""

Target = Callable[..., TargetProcess]


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[str]:
    """Two Ray nodes of one CPU each; the head's GCS address."""
    with quiet_ray_env() as temp:
        require_ray()  # after the environment is set: Ray reads it on import
        from ray.cluster_utils import Cluster

        args = {
            "num_cpus": 1,
            "include_dashboard": False,
            "temp_dir": str(temp),
            "node_ip_address": LOOPBACK,
        }
        cluster = Cluster(initialize_head=True, head_node_args=args)
        try:
            cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
            cluster.wait_for_nodes()
            assert str(cluster.address).startswith(f"{LOOPBACK}:"), cluster.address
            yield str(cluster.address)
        finally:
            cluster.shutdown()  # type: ignore[no-untyped-call]


def test_two_nodes_run_one_actor_each_and_count_exactly_what_the_target_served(
    two_nodes: str, target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "script.yaml").write_text(SCRIPT.format(url=target.url()), encoding="utf-8")
    out = tmp_path / "out"  # outside the bundle: the actors write their ledgers there
    flags = ("--quiet", "--sampling", "full", "--out", str(out))
    code, result, err = run_cli(bundle, "--cluster", f"ray://{two_nodes}", *flags)
    served = target.stats()
    assert code == 0, err
    cluster = result["cluster"]
    assert cluster["workers"] == 2  # one per CPU the cluster reports: one per node here
    assert [s["status"] for s in cluster["segments"]] == ["completed", "completed"]
    assert sorted(s["users"] for s in cluster["segments"]) == [3, 4]
    assert cluster["exact"]
    assert cluster["mismatches"] == []
    assert result["requests"]["total"] == served["received"] == served["by_status"]["200"] == 84
    assert result["users"] == {"planned": 7, "started": 7, "finished": 7}
    ids = {e["user_id"] for e in ledger_entries(out)}
    assert ids == {f"u{k:04d}" for k in range(1, 8)}
    assert len(ledger_entries(out)) == 84
