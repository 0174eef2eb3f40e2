"""Evaluate stage: full-grid dose, exact DVH, TG-263 metrics, goals, target indices, PlanRecord."""

from __future__ import annotations

from specc.evaluate.context import EvaluationError, PlanDoseContext
from specc.evaluate.dvh import DVH, UndefinedMetric
from specc.evaluate.goals import GoalStatus, MeasuredStatus, judge, reported_status
from specc.evaluate.indices import hot_spot, target_indices
from specc.evaluate.metrics import measure
from specc.evaluate.plan import PlanEvaluation, evaluate_dose, evaluate_plan
from specc.evaluate.record import (
    BeamSegmentsRecord,
    DeliveryRecord,
    DoseSourceRecord,
    GoalRecord,
    HotSpot,
    NormalizationRecord,
    PlanRecord,
    PriorDoseRecord,
    Review,
    RobustGoalRecord,
    RobustnessRecord,
    SolverRecord,
    StructureDose,
    TargetIndices,
    TermRecord,
)

__all__ = [
    "BeamSegmentsRecord",
    "DVH",
    "DeliveryRecord",
    "DoseSourceRecord",
    "EvaluationError",
    "GoalRecord",
    "GoalStatus",
    "HotSpot",
    "MeasuredStatus",
    "NormalizationRecord",
    "PlanDoseContext",
    "PlanEvaluation",
    "PlanRecord",
    "PriorDoseRecord",
    "Review",
    "RobustGoalRecord",
    "RobustnessRecord",
    "SolverRecord",
    "StructureDose",
    "TargetIndices",
    "TermRecord",
    "UndefinedMetric",
    "evaluate_dose",
    "evaluate_plan",
    "hot_spot",
    "judge",
    "measure",
    "reported_status",
    "target_indices",
]
