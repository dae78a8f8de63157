"""PMP kit: bundles for the PMP mapping tests (tests/progress/test_pmp*.py), one that uses every
cell of the map and one that uses only the cells every plan uses."""

from __future__ import annotations

from pathlib import Path

# Every cell: milestones, checks, a leased pool with a health check, the communications
# section, an error catalogue and exits, and a stakeholder register in user.context.
FULL = """\
version: "1.0"
name: pmp-full
components:
  - {name: http, version: "1.0.0", kind: native, capabilities: [get, health]}
  - {name: logger, version: "1.0.0", kind: native, capabilities: [info, warn]}
resources:
  pool:
    type: pair_pool
    config: {manifest: ./resource.yaml, parser: {format: csv}}
    capacity: {size: 10}
    health-check:
      interval: 200ms
      timeout: 1s
      probe: {action: http.health, with: {target: "{{resource.ip}}:{{resource.port}}"}}
workbook:
  sections:
    timeline:
      process-group: monitoring
      defaults: {phase: initiating.idle, transition_trace: []}
    registers:
      process-group: risk
      defaults: {risk: {flag: none, entries: []}}
    communications:
      process-group: communications
      defaults: {log: [], last_synced_at: null}
progress:
  errors: {transient: [network-timeout], permanent: [unauthorized]}
actions:
  fetch:
    component: http
    call: get
    with: {url: "http://{{resource.ip}}:{{resource.port}}/asset"}
    checks:
      - status: 200
  note:
    component: logger
    call: info
    with: {message: fetched}
workflows:
  main:
    type: graph
    nodes:
      - id: first
        type: action
        action: fetch
        controls:
          exec:
            transitions: [{edge: fetched, to: second, condition: always}]
      - id: second
        type: action
        action: note
        controls:
          exec:
            transitions: [{edge: noted, to: end, condition: always}]
      - {id: end, type: terminus, state: closing.success}
load:
  scenarios:
    - name: buyers
      workflow: main
      user-count: {users}
      {length}
      think-time: 20ms
      user:
        inherit: [pool]
        context:
          stakeholder:
            entries:
              - {name: ops, role: operator, interest: high, influence: medium}
              - {name: sponsor, role: sponsor, interest: medium, influence: high}
            concerns: [p95 under 1s]
      exits: {error: error_out, timeout: timeout_out}
      milestones:
        - {name: fetched, node: first, edge: fetched, weight: 0.7}
        - {name: noted, node: second, edge: noted, weight: 0.3}
monitoring:
  error_out: {actions: [{action: logger.warn, with: {message: err}}]}
  timeout_out: {actions: [{action: logger.warn, with: {message: late}}]}
"""

# Only what every plan has: one component, one action, one scenario.
MINIMAL = """\
version: "1.0"
name: pmp-minimal
components:
  - {name: http, version: "1.0.0", kind: native, capabilities: [get]}
actions:
  fetch:
    component: http
    call: get
    with: {url: "{url}/asset"}
workflows:
  main: {steps: [{ref: fetch}]}
load:
  scenarios:
    - {name: only, workflow: main, user-count: 2, iterations: 3}
"""


def full_bundle(
    where: Path, host: str, port: int, users: int = 3, length: str = "iterations: 4"
) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    text = FULL.replace("{users}", str(users)).replace("{length}", length)
    (where / "script.yaml").write_text(text, encoding="utf-8")
    (where / "resource.yaml").write_text(f"ip,port\n{host},{port}\n", encoding="utf-8")
    return where


def minimal_bundle(where: Path, url: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "script.yaml").write_text(MINIMAL.replace("{url}", url), encoding="utf-8")
    return where
