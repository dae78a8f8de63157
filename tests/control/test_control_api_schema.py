"""The control endpoint against its OpenAPI description, by schemathesis, on a live run: requests
generated from the shipped document (valid ones and, for the scale body, invalid ones), every
answer checked against it (status codes documented, problem objects and status bodies matching
their schemas, content types, the token enforced: schemathesis resends without it)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import ignored_auth

from scenario_kit import act, document, edge, end, graph, http, on, write_bundle
from wbsrun.control import openapi_document
from wbsrun.target import TargetKnobs, TargetProcess

REPO = Path(__file__).resolve().parents[2]


def _api() -> dict[str, Any]:
    """The shipped document, with a scale of at most 20 users: the fuzz keeps the load small
    (the range itself is checked by test_control_endpoint.py)."""
    api = copy.deepcopy(openapi_document())
    api["components"]["schemas"]["Scale"]["properties"]["users"]["maximum"] = 20
    return api


SCHEMA = schemathesis.openapi.from_dict(_api())
STEERING = SCHEMA.exclude(operation_id="stop")  # stop ends the run: last, on its own


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A `wbsrun run --control 0` in a subprocess against a target, for the whole module: its
    endpoint's URL and token. Stopped (and waited for) at the end."""
    tmp = tmp_path_factory.mktemp("control-api")
    flow = graph(act("get", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    doc = document({"fetch": http("get")}, flow, 2, think_time="50ms")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    with TargetProcess.start(knobs=TargetKnobs(latency_ms=10)) as target:
        bundle = write_bundle(tmp, doc, on(target))
        token_file = tmp / "token"
        argv = [sys.executable, "-m", "wbsrun", "run", str(bundle), "--duration", "100s"]
        argv += ["--quiet", "--control", "0", "--control-token-file", str(token_file)]
        argv += ["--json", str(tmp / "result.json")]
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        ) as proc:
            try:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                assert line.startswith("control: "), line
                url = line.split()[1]
                yield url, token_file.read_text().strip()
                # The last call: stop, checked against the document too; the run then ends.
                stop = SCHEMA["/v1/stop"]["POST"].Case()
                # Without `ignored_auth`: it resends the request without the token after the
                # answer, by when the stopped run may have closed its endpoint (every route's
                # 401 without a token: the fuzz above and test_control_endpoint.py).
                stop.call_and_validate(
                    base_url=url, headers=_auth(token_file), excluded_checks=[ignored_auth]
                )
                assert proc.wait(timeout=60) == 105
                result = json.loads((tmp / "result.json").read_text())
                assert result["status"] == "interrupted"
            finally:
                if proc.poll() is None:
                    proc.kill()


def _auth(token: Path | str) -> dict[str, str]:
    text = token.read_text().strip() if isinstance(token, Path) else token
    return {"Authorization": f"Bearer {text}"}


CASES = st.one_of(
    STEERING.as_strategy(GenerationMode.POSITIVE),
    SCHEMA["/v1/scale"]["POST"].as_strategy(GenerationMode.NEGATIVE),
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=CASES)
def test_every_answer_of_the_live_endpoint_matches_its_openapi_description(
    live_run: tuple[str, str], case: schemathesis.Case[Any]
) -> None:
    url, token = live_run
    started = time.monotonic()
    case.call_and_validate(base_url=url, headers=_auth(token))
    assert time.monotonic() - started < 5.0  # answered by the run's loop at once
