"""Compiling a protocol against a small synthetic case: structures, dose entries, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from evaluate_fakes import protocol, synthetic_case
from specc.case import products
from specc.compile import compile_protocol, resolve_structures
from specc.compile.margins import expand
from specc.compile import voxels
from specc.compile.voxels import select_voxels
from specc.errors import CompileError
from specc.protocol.diagnostics import ProtocolError
from specc.protocol import parse_protocol_text

GOALS = {"Target": ["D95% >= 57 Gy"]}
TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: max_dose, structure: Organ, dose: 30 Gy}",
    "{kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 1}",
]


def test_summary_counts_rows_and_nonzeros_of_each_structure() -> None:
    case = synthetic_case()
    program = compile_protocol(protocol(GOALS, terms=TERMS), case)
    stats = {s.name: s for s in program.stats.structures}
    assert set(stats) == {"Target", "Organ", "Body"}
    for name, structure in case.structures.items():
        entries = program.selection.structures[name]
        assert stats[name].voxels == structure.n_voxels
        assert stats[name].entries == len(entries.entries) <= structure.n_voxels
        rows = program.selection.rows[entries.entries]
        assert stats[name].nonzeros == case.influence[rows].nnz
        assert not stats[name].sampled
    assert program.stats.dose_entries == len(program.selection.rows)
    assert program.stats.nonzeros == case.influence[program.selection.rows].nnz
    assert program.stats.beamlets == case.n_beamlets
    # variables: fluence, dose entries and cvxpy's own (none for these kinds before canonicalization)
    assert program.stats.variables == case.n_beamlets + program.stats.dose_entries
    assert all(term.source.startswith("protocols/test.yaml:") for term in program.terms)
    assert [t.hard for t in program.terms] == [False, True, False]


def test_the_summary_counts_what_the_cvxpy_problem_holds_once_built() -> None:
    terms = [*TERMS, "{kind: dvh, structure: Organ, dose: 20 Gy, volume: 30%, bound: upper}",
             "{kind: mean_dose, structure: Organ, max: 15 Gy}"]
    program = compile_protocol(protocol(GOALS, terms=terms), synthetic_case())
    assert program._problem is None  # the sizes are counted without building it
    problem = program.problem
    assert program.stats.variables == sum(variable.size for variable in problem.variables())
    assert program.stats.constraints == sum(constraint.size for constraint in problem.constraints)
    assert program.problem is problem  # built once


def test_only_structures_that_terms_use_enter_the_program() -> None:
    case = synthetic_case()
    program = compile_protocol(protocol(GOALS, terms=TERMS[:1]), case)
    assert set(program.selection.structures) == {"Target"}
    assert program.stats.dose_entries <= case.structures["Target"].n_voxels
    assert set(program.masks) == {"Target", "Organ", "Body"}  # every structure is still evaluated


def test_total_doses_become_per_fraction_doses_in_the_program() -> None:
    case = synthetic_case()
    terms = ["{kind: min_dose, structure: Target, dose: 60 Gy}", "{kind: fluence_regularization, weight: 1, norm: l1}"]
    program = compile_protocol(protocol(GOALS, fractions=30, terms=terms), case)
    program.problem.solve(solver="CLARABEL")
    fluence = program.fluence.value
    per_fraction = case.influence[case.rows(case.structures["Target"].mask)] @ fluence
    assert per_fraction.min() == pytest.approx(2.0, rel=1e-4)  # 60 Gy / 30 fractions, met with equality


def test_identical_rows_are_merged_exactly_and_weights_are_relative_volumes() -> None:
    rng = np.random.default_rng(3)
    dense = rng.random((6, 8))
    dense[dense < 0.4] = 0
    dense[:, 0] = np.arange(1, 7)  # six distinct, non-zero rows
    distinct = sp.csr_matrix(dense.astype(np.float32))
    influence = sp.vstack([distinct, distinct[[0, 0, 2]], sp.csr_matrix((3, 8), dtype=np.float32)]).tocsr()
    rows = {"A": np.arange(12), "B": np.array([0, 6, 7, 9, 10])}
    selection = select_voxels(influence, rows, exact={"A", "B"})
    fluence = rng.random(8)
    dose = influence[selection.rows] @ fluence
    for name, voxel_rows in rows.items():
        entries = selection.structures[name]
        assert entries.weights.sum() == pytest.approx(1.0)
        assert entries.weights @ dose[entries.entries] == pytest.approx((influence[voxel_rows] @ fluence).mean())
        assert (dose[entries.entries].max()) == pytest.approx((influence[voxel_rows] @ fluence).max())
    assert len(selection.structures["B"].entries) == 2  # rows 0, 6, 7 are equal; 9 and 10 are zero rows
    assert len(selection.rows) == 7  # the 6 distinct rows and one zero row


def test_identical_rows_with_different_prior_doses_stay_apart() -> None:
    """A composite plan's zero rows (no beamlet reaches them) differ by their prior dose: never merged."""
    influence = sp.csr_matrix(np.array([[1, 2], [1, 2], [0, 0], [0, 0], [0, 0]], dtype=np.float32))
    rows = {"Organ": np.arange(5)}
    assert len(select_voxels(influence, rows, exact={"Organ"}).rows) == 2
    offsets = np.array([5.0, 5.0, 0.0, 30.0, 30.0])
    selection = select_voxels(influence, rows, exact={"Organ"}, offsets=offsets)
    assert sorted(offsets[selection.rows].tolist()) == [0.0, 5.0, 30.0]
    assert len(selection.rows) == 3 and selection.structures["Organ"].weights.tolist() == pytest.approx([0.4, 0.2, 0.4])


def test_rows_merged_in_chunks_are_exactly_the_identical_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rows of equal length that differ only in one value (by one float32 step) or in one
    # column, plus true duplicates and zero rows, grouped in chunks of a few nonzeros.
    base = np.array([[1, 0, 2, 0], [0, 3, 0, 4], [1, 0, 0, 2], [0, 0, 0, 0]], dtype=np.float32)
    near = np.array([[1, 0, np.nextafter(np.float32(2), np.float32(3)), 0], [0, 1, 0, 2]], dtype=np.float32)
    dense = np.vstack([base, near, base[[1, 0, 3, 2]], near[[0]]])
    influence = sp.csr_matrix(dense)
    rows = np.arange(len(dense))
    identical = (dense[:, None, :] == dense[None, :, :]).all(axis=2)
    monkeypatch.setattr(voxels, "_CHUNK_NONZEROS", 3)

    group = voxels._group_identical_rows(influence, rows)
    assert np.array_equal(group[:, None] == group[None, :], identical)

    # Projections made useless (every row of a length collides): the exact check alone keeps
    # every unequal row apart (a colliding row may stay unmerged, never wrongly merged).
    monkeypatch.setattr(voxels, "_projection",
                        lambda matrix, rows, vector, lengths: np.zeros(len(rows)))
    group = voxels._group_identical_rows(influence, rows)
    merged = group[:, None] == group[None, :]
    assert not (merged & ~identical).any()
    assert merged[0, 7] and merged[3, 8]  # a duplicate of its group's first row is still merged


def test_large_soft_only_structures_are_sampled_but_targets_and_hard_limits_are_not() -> None:
    case = synthetic_case()
    program = compile_protocol(protocol(GOALS, terms=TERMS), case, sample_limit=50)
    entries = program.selection.structures
    body, target, organ = entries["Body"], entries["Target"], entries["Organ"]
    assert body.sampled and not target.sampled and not organ.sampled
    # The Body voxels inside the target and the organ are rows the program holds anyway: kept
    # exactly, one voxel's weight each; only the rest of the body is sampled.
    held = np.union1d(target.entries, organ.entries)
    assert len(np.setdiff1d(body.entries, held)) <= 50
    inside = np.isin(body.entries, held)
    in_target_or_organ = int(np.count_nonzero(case.structures["Target"].mask | case.structures["Organ"].mask))
    assert body.kept == in_target_or_organ
    assert body.weights[inside].sum() * body.n_voxels == pytest.approx(in_target_or_organ)
    assert body.weights.sum() == pytest.approx(1.0)
    assert any("Body" in note and "sample of 50" in note and f"its {body.kept} voxels" in note for note in program.notes)


def test_the_sample_takes_one_voxel_from_each_compact_patch_of_the_grid() -> None:
    # 16^3 voxels with distinct rows: runs of 64 along the Morton curve are exactly the
    # aligned 4 x 4 x 4 cubes, so a stratified sample of 64 has one voxel in each cube.
    shape = (16, 16, 16)
    n = int(np.prod(shape))
    influence = sp.csr_matrix((np.arange(1, n + 1, dtype=np.float32), (np.arange(n), np.zeros(n, int))), shape=(n, 2))
    locate = lambda rows: np.column_stack(np.unravel_index(rows, shape))  # noqa: E731
    selection = select_voxels(influence, {"Big": np.arange(n)}, exact=(), sample_limit=64, locate=locate)
    big = selection.structures["Big"]
    assert big.sampled and big.kept == 0 and len(big.entries) == 64
    cubes = np.column_stack(np.unravel_index(selection.rows[big.entries], shape)) // 4
    assert len(np.unique(cubes, axis=0)) == 64
    np.testing.assert_allclose(big.weights, 1 / 64)
    # Without grid positions the strata are runs of the rows' own (raster) order: one voxel per slab of 4 x 16.
    raster = select_voxels(influence, {"Big": np.arange(n)}, exact=(), sample_limit=64)
    assert len(np.unique(raster.rows[raster.structures["Big"].entries] // 64)) == 64


def test_the_protocol_sets_the_sample_or_asks_for_every_voxel() -> None:
    case = synthetic_case()
    sampled = compile_protocol(protocol(GOALS, terms=TERMS, solver="{sample_voxels: 50}"), case)
    assert sampled.selection.structures["Body"].sampled
    assert any("Body" in note and "sample of 50" in note for note in sampled.notes)
    every = compile_protocol(protocol(GOALS, terms=TERMS, solver="{sample_voxels: all}"), case)
    assert not any(entries.sampled for entries in every.selection.structures.values())
    assert every.selection.structures["Body"].n_voxels > 50


@pytest.mark.parametrize("value", ["0", "some", "2.5"])
def test_a_sample_size_must_be_a_positive_count_or_all(value: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        protocol(GOALS, terms=TERMS, solver=f"{{sample_voxels: {value}}}")
    message = str(raised.value)
    assert "sample_voxels" in message and "protocols/test.yaml:" in message
    assert message.count("sample_voxels") == 1 and "or `all`" in message  # one error, not one per union branch


def test_case_structures_are_found_by_alias_case_insensitively() -> None:
    case = synthetic_case(target_name="ptv_high", oar_name="RECTUM")
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "structures:\n  PTV: {role: target, aliases: [PTV_High]}\n  Rectum: {role: oar}\n"
        "prescription: {fractions: 2, levels: [{target: PTV, dose: 4 Gy}]}\n"
    )
    resolved = resolve_structures(parse_protocol_text(text, "p.yaml"), case)
    assert resolved.case_names == {"PTV": "ptv_high", "Rectum": "RECTUM"}


def test_a_missing_organ_is_an_error_naming_the_protocol_and_the_case_structures() -> None:
    case = synthetic_case(oar_name="Rectum_wall")
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "structures:\n  Target: {role: target}\n  Rectum: {role: oar}\n"
        "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"
    )
    with pytest.raises(CompileError) as raised:
        resolve_structures(parse_protocol_text(text, "p.yaml"), case)
    message = str(raised.value)
    assert "p.yaml" in message and "'Rectum'" in message
    assert "Body, Rectum_wall, Target" in message and "Did you mean 'Rectum_wall'?" in message


def test_derived_structures_follow_their_expression_and_are_clipped_to_the_rows() -> None:
    case = synthetic_case()
    text = (
        "specc: 1\nname: t\nsite: t\nversion: 1.0.0\n"
        "structures:\n  Target: {role: target}\n  Organ: {role: oar}\n  Body: {role: other}\n"
        "  Big: {role: other, expression: 'expand(Target, 10mm) - Organ'}\n"
        "  Wide: {role: other, expression: 'expand(Body, 10mm)'}\n"
        "prescription: {fractions: 2, levels: [{target: Target, dose: 4 Gy}]}\n"
    )
    resolved = resolve_structures(parse_protocol_text(text, "p.yaml"), case)
    target, organ, body = (case.structures[n].mask for n in ("Target", "Organ", "Body"))
    np.testing.assert_array_equal(resolved.masks["Big"], expand(target, 10.0, case.grid.spacing_mm) & ~organ & body)
    np.testing.assert_array_equal(resolved.masks["Wide"], body)  # nothing outside the body has dose
    assert any(note.startswith("Wide:") and "left out" in note for note in resolved.notes)


def test_without_a_sample_limit_every_voxel_enters_the_program() -> None:
    case = synthetic_case()
    program = compile_protocol(protocol(GOALS, terms=TERMS), case, sample_limit=None)
    # Entries in row order; the rows merged away are empty, so A_sel is a view of the case's matrix.
    assert np.all(np.diff(program.selection.rows) > 0)
    assert all(np.all(np.diff(entries.entries) > 0) for entries in program.selection.structures.values())
    assert np.shares_memory(program.influence.data, case.influence.data)
    np.testing.assert_array_equal(program.influence.toarray(), case.influence[program.selection.rows].toarray())
    body = program.selection.structures["Body"]
    assert not body.sampled and body.weights.sum() == pytest.approx(1.0)
    # every Body voxel is represented: the merged entries' weights count all of them
    assert np.allclose(np.sort(body.weights * body.n_voxels) % 1.0, 0.0)
    assert not any("sample" in note for note in program.notes)


def test_distinct_ids_match_numpy_unique() -> None:
    values = np.random.default_rng(5).integers(0, 1000, 5000)
    distinct, inverse = voxels._distinct(values, 1000)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(distinct, expected)
    np.testing.assert_array_equal(inverse, expected_inverse)
    assert voxels._count_distinct(values, 1000) == len(expected)


def test_rows_are_grouped_as_numpy_unique_groups_them() -> None:
    """`_unique_rows` replaces np.unique(axis=0) for speed: same first indices, same group numbers."""
    rng = np.random.default_rng(5)
    table = rng.integers(0, 4, size=(500, 3)).astype(np.float64)  # many repeated rows
    table[::7, 1] = -0.0  # -0.0 and 0.0 are one value for both
    expected_first, expected_inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)[1:]
    first, inverse = voxels._unique_rows(table)
    np.testing.assert_array_equal(first, expected_first)
    np.testing.assert_array_equal(inverse, expected_inverse.ravel())


def test_a_body_s_rows_are_projected_on_the_whole_matrix_and_a_few_rows_on_their_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The merging's projection of rows holding most of the matrix's nonzeros (a body) runs on the whole float32
    matrix by row blocks, without copying the rows (large case: 0.14 -> 0.03 s); a few rows are copied chunk by
    chunk. Both give each row's float64 product, the float32 values times the float64 vector."""
    monkeypatch.setattr(products, "BLOCK_NONZEROS", 7)  # several blocks, on the thread pool
    monkeypatch.setattr(voxels, "_CHUNK_NONZEROS", 5)  # several chunks
    rng = np.random.default_rng(3)
    influence = sp.random(40, 9, density=0.4, format="csr", dtype=np.float32, random_state=rng)
    vector = rng.standard_normal(9)
    exact = influence.toarray().astype(np.float64) @ vector
    copied = []
    select = sp.csr_matrix.__getitem__
    monkeypatch.setattr(sp.csr_matrix, "__getitem__", lambda matrix, key: copied.append(key) or select(matrix, key))

    lengths = np.diff(influence.indptr)
    most = np.arange(2, 40)
    np.testing.assert_allclose(voxels._projection(influence, most, vector, lengths[most]), exact[most], rtol=1e-12)
    assert copied == []
    few = np.array([0, 5, 6, 30])
    np.testing.assert_allclose(voxels._projection(influence, few, vector, lengths[few]), exact[few], rtol=1e-12)
    assert copied


def test_a_recompile_that_selects_the_same_rows_keeps_them_and_builds_the_new_terms() -> None:
    """`reuse`: a weight or level change keeps the earlier program's rows, matrix and variables; the
    program is the one a fresh compile gives. A term on another structure selects rows anew."""
    case = synthetic_case()
    terms = ["{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
             "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}"]
    earlier = compile_protocol(protocol(GOALS, terms=terms), case, sample_limit=40)
    changed = protocol(GOALS, terms=[terms[0], terms[1].replace("weight: 1", "weight: 3").replace("10 Gy", "8 Gy")])
    reused = compile_protocol(changed, case, sample_limit=40, reuse=earlier)
    fresh = compile_protocol(changed, case, sample_limit=40)
    assert reused.influence is earlier.influence and reused.fluence is earlier.fluence
    np.testing.assert_array_equal(reused.selection.rows, fresh.selection.rows)
    fluence = np.random.default_rng(2).random(case.n_beamlets)
    for program in (reused, fresh):
        program.fluence.value = fluence
        program.dose.value = program.dose_per_fraction(fluence)
    assert reused.objective.value == pytest.approx(fresh.objective.value, rel=1e-12)
    assert reused.objective.value != pytest.approx(earlier.objective.value, rel=1e-6)  # the new terms, not the old

    body = terms + ["{kind: quadratic_overdose, structure: Body, dose: 20 Gy, weight: 1}"]
    other = compile_protocol(protocol(GOALS, terms=body), case, sample_limit=40, reuse=earlier)
    assert other.influence is not earlier.influence
    np.testing.assert_array_equal(other.selection.rows, compile_protocol(protocol(GOALS, terms=body), case,
                                                                          sample_limit=40).selection.rows)
