"""The PMBOK process map (6th edition: 49 processes in 10 knowledge areas × 5 process groups,
the roadmap's "十五至尊图") and where each used cell of it is fed from (docs/pmp-mapping.md).

Data only: `progress/pmp.py` computes the figures; this module says which figure feeds which
cell, and when a plan uses the cell (`CELLS`' condition, decided by `PmpPlan.uses`).
"""

from __future__ import annotations

from typing import Final

__all__ = ["AREA_SOURCES", "CELLS", "KNOWLEDGE_AREAS", "PROCESSES", "PROCESS_GROUPS", "processes"]

PROCESS_GROUPS: Final = ("initiating", "planning", "executing", "monitoring", "closing")
KNOWLEDGE_AREAS: Final = (
    "integration",
    "scope",
    "schedule",
    "cost",
    "quality",
    "resources",
    "communications",
    "risk",
    "procurement",
    "stakeholders",
)

_I, _P, _E, _M, _C = PROCESS_GROUPS

# (id, name, knowledge area, process group): PMBOK Guide 6th edition, table 1-4.
PROCESSES: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("4.1", "Develop Project Charter", "integration", _I),
    ("4.2", "Develop Project Management Plan", "integration", _P),
    ("4.3", "Direct and Manage Project Work", "integration", _E),
    ("4.4", "Manage Project Knowledge", "integration", _E),
    ("4.5", "Monitor and Control Project Work", "integration", _M),
    ("4.6", "Perform Integrated Change Control", "integration", _M),
    ("4.7", "Close Project or Phase", "integration", _C),
    ("5.1", "Plan Scope Management", "scope", _P),
    ("5.2", "Collect Requirements", "scope", _P),
    ("5.3", "Define Scope", "scope", _P),
    ("5.4", "Create WBS", "scope", _P),
    ("5.5", "Validate Scope", "scope", _M),
    ("5.6", "Control Scope", "scope", _M),
    ("6.1", "Plan Schedule Management", "schedule", _P),
    ("6.2", "Define Activities", "schedule", _P),
    ("6.3", "Sequence Activities", "schedule", _P),
    ("6.4", "Estimate Activity Durations", "schedule", _P),
    ("6.5", "Develop Schedule", "schedule", _P),
    ("6.6", "Control Schedule", "schedule", _M),
    ("7.1", "Plan Cost Management", "cost", _P),
    ("7.2", "Estimate Costs", "cost", _P),
    ("7.3", "Determine Budget", "cost", _P),
    ("7.4", "Control Costs", "cost", _M),
    ("8.1", "Plan Quality Management", "quality", _P),
    ("8.2", "Manage Quality", "quality", _E),
    ("8.3", "Control Quality", "quality", _M),
    ("9.1", "Plan Resource Management", "resources", _P),
    ("9.2", "Estimate Activity Resources", "resources", _P),
    ("9.3", "Acquire Resources", "resources", _E),
    ("9.4", "Develop Team", "resources", _E),
    ("9.5", "Manage Team", "resources", _E),
    ("9.6", "Control Resources", "resources", _M),
    ("10.1", "Plan Communications Management", "communications", _P),
    ("10.2", "Manage Communications", "communications", _E),
    ("10.3", "Monitor Communications", "communications", _M),
    ("11.1", "Plan Risk Management", "risk", _P),
    ("11.2", "Identify Risks", "risk", _P),
    ("11.3", "Perform Qualitative Risk Analysis", "risk", _P),
    ("11.4", "Perform Quantitative Risk Analysis", "risk", _P),
    ("11.5", "Plan Risk Responses", "risk", _P),
    ("11.6", "Implement Risk Responses", "risk", _E),
    ("11.7", "Monitor Risks", "risk", _M),
    ("12.1", "Plan Procurement Management", "procurement", _P),
    ("12.2", "Conduct Procurements", "procurement", _E),
    ("12.3", "Control Procurements", "procurement", _M),
    ("13.1", "Identify Stakeholders", "stakeholders", _I),
    ("13.2", "Plan Stakeholder Engagement", "stakeholders", _P),
    ("13.3", "Manage Stakeholder Engagement", "stakeholders", _E),
    ("13.4", "Monitor Stakeholder Engagement", "stakeholders", _M),
)

# What each knowledge area is read from (issue 23).
AREA_SOURCES: Final = {
    "integration": "health and the process groups' progress",
    "scope": "WBS completion",
    "schedule": "time and milestone progress",
    "cost": "requests and resource use",
    "quality": "errors and checks",
    "resources": "leases",
    "communications": "the run log",
    "risk": "the risk register",
    "procurement": "plugins and pools",
    "stakeholders": "the stakeholder register",
}

# (area, group, metric that feeds the cell, when the plan uses it). Conditions: `always`;
# `milestones`, `checks` (checks: or thresholds:), `pools` (a scenario inherits a pool),
# `health-checks` (an inherited pool has a health_check), `communications` (the workbook
# declares the section), `risk-plan` (error catalogue, health_threshold or exits),
# `components`, `stakeholders` (a stakeholder register entry is declared).
CELLS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("integration", _I, "initiating-progress", "always"),
    ("integration", _P, "planning-progress", "always"),
    ("integration", _E, "executing-progress", "always"),
    ("integration", _M, "health-score", "always"),
    ("integration", _C, "closing-progress", "always"),
    ("scope", _P, "wbs-planned", "always"),
    ("scope", _M, "wbs-completed", "always"),
    ("schedule", _P, "milestones-planned", "milestones"),
    ("schedule", _M, "schedule-progress", "always"),
    ("cost", _P, "users-planned", "always"),
    ("cost", _M, "requests-sent", "always"),
    ("quality", _P, "checks-planned", "checks"),
    ("quality", _E, "passes-succeeded", "always"),
    ("quality", _M, "error-rate", "always"),
    ("resources", _P, "pools-planned", "pools"),
    ("resources", _E, "leases-acquired", "pools"),
    ("resources", _M, "leases-released", "pools"),
    ("communications", _P, "communications-planned", "communications"),
    ("communications", _E, "log-lines", "always"),
    ("communications", _M, "log-warnings", "always"),
    ("risk", _P, "risk-responses-planned", "risk-plan"),
    ("risk", _E, "risk-responses", "risk-plan"),
    ("risk", _M, "risks-identified", "always"),
    ("procurement", _P, "plugins-planned", "components"),
    ("procurement", _E, "pool-capacity", "pools"),
    ("procurement", _M, "pool-health-checks", "health-checks"),
    ("stakeholders", _I, "stakeholders-identified", "stakeholders"),
    ("stakeholders", _P, "stakeholders-planned", "stakeholders"),
    ("stakeholders", _E, "stakeholders-engaged", "stakeholders"),
    ("stakeholders", _M, "stakeholders-engaged-ratio", "stakeholders"),
)


def processes(area: str, group: str) -> list[str]:
    """The ids of the PMBOK processes of one cell (empty: the map has none there)."""
    return [pid for pid, _, a, g in PROCESSES if a == area and g == group]
