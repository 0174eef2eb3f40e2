"""Compile stage: a protocol and a case become one cvxpy fluence-map program."""

from __future__ import annotations

from specc.compile.program import CompiledProgram, CompiledTerm, ProgramStats, StructureStats, compile_protocol
from specc.compile.structures import ResolvedStructures, resolve_structures

__all__ = [
    "CompiledProgram",
    "CompiledTerm",
    "ProgramStats",
    "ResolvedStructures",
    "StructureStats",
    "compile_protocol",
    "resolve_structures",
]
