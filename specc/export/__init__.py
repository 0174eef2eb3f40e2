"""Getting a plan out of specc: result.h5, MLC segments, DICOM RT Dose, DVH tables."""

from specc.export.result_file import DerivedStructure, PlanResult, ResultError, read_result, write_result
from specc.export.segments import write_segments

__all__ = ["DerivedStructure", "PlanResult", "ResultError", "read_result", "write_result", "write_segments"]
