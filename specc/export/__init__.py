"""Getting a plan out of specc: result.h5, DICOM RT Dose, DVH tables."""

from specc.export.result_file import PlanResult, ResultError, read_result, write_result

__all__ = ["PlanResult", "ResultError", "read_result", "write_result"]
