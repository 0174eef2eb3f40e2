"""Sequence: a solved fluence as deliverable MLC segments (between solve and evaluate)."""

from specc.sequence.segments import BeamSegments, Sequence, SequenceError, check_sequenceable, sequence_fluence
from specc.sequence.sweep import Apertures, sweep_apertures

__all__ = ["Apertures", "BeamSegments", "Sequence", "SequenceError", "check_sequenceable", "sequence_fluence", "sweep_apertures"]
