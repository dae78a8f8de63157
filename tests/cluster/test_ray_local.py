"""`wbsrun run --cluster local-ray` and `--cluster ray://ADDR` on a local Ray (2 CPUs, started
once for the module): the actors' merged totals equal what the target served and the sum of
their deltas, with a one-process run's user ids; a killed actor is a failed segment (users
lost, exit 1) without a hang; an abort-on-fail threshold drains every actor; a start that Ray
cannot place fails at once and clearly; a missing Ray says how to install it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from ray_kit import LOOPBACK, ledger_entries, quiet_ray_env, require_ray, run_cli, wait_until
from wbsrun.cli.app import cli
from wbsrun.target import TargetKnobs, TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

SCRIPT = """\
name: rays
actions:
  fetch:
    component: http
    call: get
    with: {{url: "{url}/asset"}}
  miss:
    component: http
    call: get
    with: {{url: "{url}/nowhere"}}
workflows:
  main:
    steps:
      - ref: fetch
      - ref: miss
load:
  scenarios:
    - name: visitors
      workflow: main
      user-count: {users}
{extra}
"""

Target = Callable[..., TargetProcess]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """A local Ray of 2 CPUs for the module; its GCS address (for `--cluster ray://`)."""
    with quiet_ray_env() as temp:
        ray = require_ray()  # after the environment is set: Ray reads it on import
        context = ray.init(
            num_cpus=2,
            include_dashboard=False,
            _temp_dir=str(temp),
            configure_logging=False,
            log_to_driver=False,
            _node_ip_address=LOOPBACK,
        )
        address = str(context.address_info["gcs_address"])
        try:
            assert address.startswith(f"{LOOPBACK}:"), address  # Ray's traffic stays on loopback
            yield address
        finally:
            ray.shutdown()


def _bundle(path: Path, url: str, users: int, extra: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "script.yaml").write_text(
        SCRIPT.format(url=url, users=users, extra=extra), encoding="utf-8"
    )
    return path


def _in_process(bundle: Path, *flags: str) -> tuple[int, dict[str, Any], str]:
    """`wbsrun run` in this process: `local-ray` then uses the module's Ray."""
    out = bundle / "r.json"
    got = CliRunner().invoke(cli, ["run", str(bundle), "--json", str(out), *flags])
    result = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    return got.exit_code, result, got.output


def test_local_ray_counts_exactly_what_the_target_served_with_one_process_user_ids(
    local_ray: str, target_factory: Target, tmp_path: Path
) -> None:
    one_target = target_factory()
    extra = "      iterations: 15"
    one = _bundle(tmp_path / "one", one_target.url(), 5, extra)
    code, single, err = run_cli(one, "--quiet", "--sampling", "full", "--out", str(one / "out"))
    assert code == 0, err
    target = target_factory()
    two = _bundle(tmp_path / "two", target.url(), 5, extra)
    flags = ("--quiet", "--sampling", "full", "--out", str(two / "out"))
    code, result, output = _in_process(two, "--cluster", "local-ray", *flags)
    served = target.stats()
    assert code == 0, output
    jsonschema.validate(result, json.loads(SCHEMA.read_text(encoding="utf-8")))
    cluster = result["cluster"]
    assert cluster["workers"] == 2  # one actor per CPU of the local Ray
    assert cluster["exact"]
    assert cluster["mismatches"] == []
    assert [s["status"] for s in cluster["segments"]] == ["completed", "completed"]
    assert all(s["exit_code"] == 0 and s["reports"] >= 1 for s in cluster["segments"])
    assert sorted(s["users"] for s in cluster["segments"]) == [2, 3]
    # 5 users × 15 passes × (GET /asset, GET /nowhere), as the target counted them.
    assert result["requests"]["total"] == served["received"] == served["responded"] == 150
    assert result["requests"]["status_codes"] == served["by_status"] == {"200": 75, "404": 75}
    assert result["actions"]["fetch"]["latency_ms"]["count"] == served["by_route"]["GET /asset"]
    assert result["users"] == single["users"] == {"planned": 5, "started": 5, "finished": 5}
    assert result["status"] == "completed"
    # The same users and passes as one process, each written by the actor that ran it.
    passes = sorted((e["user_id"], e["task_id"]) for e in ledger_entries(two / "out"))
    assert passes == sorted((e["user_id"], e["task_id"]) for e in ledger_entries(one / "out"))
    assert {u for u, _ in passes} == {f"u{k:04d}" for k in range(1, 6)}


def _actors(ray: Any) -> list[str]:
    """The names of this run's actors (namespace `wbsrun`)."""
    named = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"] for a in named if a["namespace"] == "wbsrun")


def test_a_killed_actor_is_a_failed_segment_and_the_run_ends(
    local_ray: str, target_factory: Target, tmp_path: Path
) -> None:
    ray = require_ray()
    target = target_factory()
    bundle = _bundle(tmp_path, target.url(), 4, "      think-time: 20ms")
    out = bundle / "r.json"
    flags = ("--cluster", f"ray://{local_ray}", "--quiet", "--duration", "6s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), "--json", str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        names = wait_until(lambda: len(n := _actors(ray)) == 2 and n, 40, "two actors")
        wait_until(lambda: target.stats()["received"] > 50, 30, "requests")
        started = time.monotonic()
        ray.kill(ray.get_actor(names[0], namespace="wbsrun"), no_restart=True)
        _, err = proc.communicate(timeout=40)
        ended = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 1, err
    assert ended < 20  # the other actor's window (6 s) and its wind-down, never a hang
    result = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(result, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert result["status"] == "failed"
    cluster = result["cluster"]
    failed = [s for s in cluster["segments"] if s["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["index"] == int(names[0].rsplit("-", 1)[1])
    assert "Ray actor was lost" in failed[0]["reason"]
    assert failed[0]["exit_code"] is None
    assert failed[0]["users_lost"] == failed[0]["users"] > 0
    assert cluster["users_lost"] == failed[0]["users_lost"]
    assert [s["status"] for s in cluster["segments"] if s not in failed] == ["completed"]
    # What the lost actor reported before it died is counted; what it did after is lost.
    assert 0 < result["requests"]["total"] <= target.stats()["received"]
    assert result["logs"].get("error", 0) >= 1
    wait_until(lambda: not _actors(ray), 10, "the run's actors to end")


def test_an_abort_on_fail_threshold_drains_every_actor(
    local_ray: str, target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    extra = """      think-time: 20ms
thresholds:
  - rule: http.failed_rate < 0.01
    abort-on-fail: true
    delay-abort-eval: 1s"""
    bundle = _bundle(tmp_path, target.url(), 4, extra)
    started = time.monotonic()
    flags = ("--cluster", f"ray://{local_ray}", "--quiet", "--duration", "40s")
    code, result, err = run_cli(bundle, *flags)
    assert code == 99, err
    assert time.monotonic() - started < 30  # stopped early, not at the window's end
    assert result["status"] == "aborted"
    assert [s["status"] for s in result["cluster"]["segments"]] == ["completed", "completed"]
    assert result["cluster"]["exact"]
    assert result["requests"]["total"] == target.stats()["received"]


def test_ctrl_c_drains_the_actors_and_the_run_stops(
    local_ray: str, target_factory: Target, tmp_path: Path
) -> None:
    ray = require_ray()
    target = target_factory()
    bundle = _bundle(tmp_path, target.url(), 4, "      think-time: 20ms")
    out = bundle / "r.json"
    flags = ("--cluster", f"ray://{local_ray}", "--quiet", "--duration", "60s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), "--json", str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(_actors(ray)) == 2, 40, "two actors")
        wait_until(lambda: target.stats()["received"] > 50, 30, "requests")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        ended = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 105, err
    assert ended < 20
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["cluster"]["exact"]
    assert [s["status"] for s in result["cluster"]["segments"]] == ["completed", "completed"]
    assert result["requests"]["total"] == target.stats()["received"]
    wait_until(lambda: not _actors(ray), 10, "the run's actors to end")


def test_more_workers_than_the_cluster_has_cpus_fail_the_start_at_once(
    local_ray: str, target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    bundle = _bundle(tmp_path, target.url(), 4, "      iterations: 1")
    started = time.monotonic()
    code, _, output = _in_process(bundle, "--cluster", "local-ray", "--workers", "3")
    assert code == 1
    assert "3 workers need 3 CPUs, and the Ray cluster has 2" in output
    assert time.monotonic() - started < 10
    assert target.stats()["received"] == 0  # none started: all or none


def test_without_ray_the_cluster_option_says_how_to_install_it(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "http://127.0.0.1:9", 1, "      iterations: 1")
    hide = "import sys; sys.modules['ray'] = None; from wbsrun.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", hide, "run", str(bundle), "--cluster", "local-ray"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 1
    assert "--cluster needs Ray, an optional extra: pip install 'wbsrun[ray]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_cluster_address_where_nothing_listens_fails_at_once(
    local_ray: str, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as sock:  # a port just freed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bundle = _bundle(tmp_path, "http://127.0.0.1:9", 1, "      iterations: 1")
    started = time.monotonic()
    code, _, err = run_cli(bundle, "--cluster", f"ray://127.0.0.1:{port}", timeout=60)
    assert code == 1
    assert f"--cluster ray://127.0.0.1:{port}: nothing answers at 127.0.0.1:{port}" in err
    assert "Traceback" not in err
    assert time.monotonic() - started < 15


def test_workers_that_cannot_all_be_placed_in_time_fail_the_start_and_free_the_group(
    local_ray: str,
) -> None:
    from wbsrun.cli.ray_worker import ray_body
    from wbsrun.cluster.raylink import RayActors, RayConnection
    from wbsrun.errors import RunError

    ray = require_ray()
    # Another job holds one of the two CPUs: two one-CPU workers cannot both be placed.
    holder = ray.util.placement_group([{"CPU": 1}])
    ray.get(holder.ready(), timeout=30)
    try:
        actors = RayActors(RayConnection(ray, local_ray, owned=False), ray_body, [0, 1], None)
        actors.timeout = 1.0
        started = time.monotonic()
        with pytest.raises(RunError, match=r"could not place 2 workers .* within 1s"):
            actors.place()
        assert time.monotonic() - started < 10
        assert actors.group is None
        others = [
            g["state"]
            for key, g in ray.util.placement_group_table().items()
            if key != holder.id.hex()
        ]
        assert others
        assert set(others) == {"REMOVED"}  # the run's group freed (and every earlier run's)
        assert not actors.actors  # none started
    finally:
        ray.util.remove_placement_group(holder)


def test_live_control_reaches_the_actors_pause_holds_them_resume_and_stop_follow(
    local_ray: str, target_factory: Target, tmp_path: Path
) -> None:
    # The same forwarding as with worker processes (cluster/control.py), over the actors'
    # numbered control method: pause holds both actors' users, resume restarts them, stop is
    # the graceful stop with exact totals.
    require_ray()
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    bundle = _bundle(tmp_path, target.url(), 4, "")
    out, token = bundle / "r.json", tmp_path / "control.token"
    flags = ["--cluster", f"ray://{local_ray}", "--quiet", "--duration", "60s"]
    flags += ["--control", "0", "--control-token-file", str(token)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), "--json", str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "wbsrun", "ctl", "--url", url]
        done = subprocess.run(
            [*command, "--token-file", str(token), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done

    def both_paused() -> bool:
        workers = json.loads(ctl("status").stdout)["workers"]
        return len(workers) == 2 and all(w["paused"] and not w["pending"] for w in workers)

    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("control: "), line
        url = line.split()[1]
        wait_until(lambda: target.stats()["received"] > 20, 40, "requests")
        ctl("pause")
        wait_until(both_paused, 10, "both actors paused")
        time.sleep(0.3)
        held = target.stats()["received"]
        time.sleep(1.5)
        assert target.stats()["received"] == held  # not one request while paused
        ctl("resume")
        wait_until(lambda: target.stats()["received"] > held + 20, 15, "requests again")
        ctl("stop")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 105, err
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["cluster"]["exact"], result["cluster"]["mismatches"]
    assert result["requests"]["total"] == target.stats()["received"]
    assert result["paused_s"] >= 1.5
