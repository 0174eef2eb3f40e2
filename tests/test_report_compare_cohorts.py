"""`specc compare` on cohort folders: one protocol version against another over the same cases."""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from datetime import datetime, timezone
from html import unescape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluate_fakes import protocol, synthetic_case
from specc.cli.app import app
from specc.pipeline import COHORT_CSV, plan_cohort
from specc.report.compare_cohorts import (
    ComparedCohort, cohort_goal_rows, cohort_warnings, read_cohort, render_cohort_comparison,
)

TERMS = [
    "{kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}",
    "{kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}",
]
GOALS = {"Target": ["D95% >= 54 Gy"], "Organ": ["Mean <= 5 Gy"]}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> dict[str, Path]:
    """Version 1 over three cases; version 2 (a heavier organ penalty) over the same three and a fourth."""
    folder = tmp_path_factory.mktemp("cohorts")
    files = []
    for seed in range(4):
        path = folder / f"case{seed}.h5"
        dataclasses.replace(synthetic_case(seed=seed), case_id=f"p{seed}").save(path)
        files.append(path)
    heavier = [TERMS[0], TERMS[1].replace("weight: 1", "weight: 20")]
    plan_cohort(protocol(GOALS, terms=TERMS, name="Site v1"), files[:3], folder / "v1")
    plan_cohort(protocol(GOALS, terms=heavier, name="Site v2", robustness="{setup_error: 5 mm}"), files, folder / "v2")
    return {"v1": folder / "v1", "v2": folder / "v2"}


def _said(compared: list[ComparedCohort]) -> list[str]:
    """The words of the cohorts' warnings and notes (`cohort_warnings`), in order."""
    return [notice.text for notice in cohort_warnings(compared)]


def _values(folder: Path, structure: str) -> dict[str, float]:
    out = {}
    for case in folder.iterdir():
        if (case / "plan.json").exists():
            record = json.loads((case / "plan.json").read_text())
            out[record["case"]["case_id"]] = next(g["value"] for g in record["goals"] if g["structure"] == structure)
    return out


def test_each_goal_is_counted_per_status_with_its_median_and_the_paired_difference(cohorts) -> None:
    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    assert (first.label, len(first.plans), second.label, len(second.plans)) == ("v1", 3, "v2", 4)
    rows = {(row.structure, row.scope): row for row in cohort_goal_rows([first, second])}
    organ = rows[("Organ", "nominal")]
    assert [sum(counts.values()) for counts in organ.counts] == [3, 4]
    before, after = _values(cohorts["v1"], "Organ"), _values(cohorts["v2"], "Organ")
    assert organ.medians == [pytest.approx(statistics.median(before.values())), pytest.approx(statistics.median(after.values()))]
    differences = [after[case] - before[case] for case in before]
    assert organ.paired_cases == 3 and organ.paired_median == pytest.approx(statistics.median(differences))
    assert organ.paired_median < 0  # the heavier organ penalty lowers its mean
    worst = rows[("Target", "worst")]  # only v2 checks setup errors
    assert sum(worst.counts[0].values()) == 0 and sum(worst.counts[1].values()) == 4 and worst.paired_median is None


def test_unpaired_cases_and_unconverged_plans_are_said(cohorts, tmp_path: Path) -> None:
    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    assert _said([first, second])[1:] == ["v1: no plan for p3 (planned in another cohort)"]
    record = first.plans["p0"].model_copy(update={"converged": False})
    stalled = dataclasses.replace(first, plans={**first.plans, "p0": record})
    assert "v1: p0 did not converge; their goals count as NOT CONVERGED" in _said([stalled, second])
    assert '<p class="running-unconverged">NOT CONVERGED: v1: p0</p>' in render_cohort_comparison([stalled, second])
    goals = [goal.model_copy(update={"status": "not_converged"}) for goal in record.goals]
    stalled.plans["p0"] = record.model_copy(update={"goals": goals})
    organ = next(row for row in cohort_goal_rows([stalled, second]) if row.structure == "Organ")
    assert organ.counts[0]["not_converged"] == 1 and organ.paired_cases == 2  # p0 counted, but in no median
    values = [goal.value for case, plan in first.plans.items() if case != "p0" for goal in plan.goals
              if goal.structure == "Organ"]
    assert organ.medians[0] == pytest.approx(statistics.median(values))


def test_the_command_compares_cohort_folders_and_refuses_a_mix(cohorts, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(cohorts["v1"]), str(cohorts["v2"]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning: v1: no plan for p3" in result.output and "Mean <= 5 Gy" in result.output
    html = (tmp_path / "compare.html").read_text()
    assert html.count('class="compared-cohort"') == 2 and "Site v1 v1.0.0" in html and "Median paired difference" in html
    plan_folder = next(path for path in cohorts["v1"].iterdir() if path.is_dir())
    mixed = runner.invoke(app, ["compare", str(cohorts["v1"]), str(plan_folder), "--out", str(tmp_path)])
    assert mixed.exit_code == 1 and "not both" in mixed.output


def test_bad_cohort_input_is_a_clear_error(cohorts, tmp_path: Path) -> None:
    from specc.report.compare import CompareError
    from specc.report.compare_cohorts import read_cohorts

    summaries = [cohorts["v1"] / COHORT_CSV, cohorts["v2"] / COHORT_CSV]
    with pytest.raises(CompareError, match="at least two cohort folders"):
        read_cohorts(summaries[:1])
    with pytest.raises(CompareError, match="1 labels for 2 cohorts"):
        read_cohorts(summaries, ["one"])
    foreign = tmp_path / COHORT_CSV
    foreign.write_text("patient,dose\nA,1\n")
    with pytest.raises(CompareError, match="not a specc cohort summary"):
        read_cohorts([summaries[0], foreign])
    assert [cohort.label for cohort in read_cohorts([summaries[0], summaries[0]])] == ["v1 (1)", "v1 (2)"]


def test_protocols_are_told_apart_by_their_sha256(cohorts) -> None:
    """Two protocols of one name and version but other content must not read as one."""
    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    [digest_1], [digest_2] = first.protocol_sha256s, second.protocol_sha256s
    [content_1] = (protocol.content_sha256 for protocol in first.protocol_files)
    assert digest_1 != digest_2
    [differ] = [warning for warning in _said([first, second]) if "protocols differ" in warning]
    assert f"v1: Site v1 v1.0.0 (SHA-256 {digest_1[:12]}, content SHA-256 {content_1[:12]})" in differ
    assert "without a new version" not in differ
    renamed = {case: record.model_copy(update={"protocol": record.protocol.model_copy(update={"name": "Site v1"})})
               for case, record in second.plans.items()}
    same_name = dataclasses.replace(second, plans=renamed)
    [differ] = [warning for warning in _said([first, same_name]) if "protocols differ" in warning]
    assert differ.endswith("the same name and version with different content, so one was changed without a new version")
    assert not [warning for warning in _said([first, first]) if "protocol" in warning]


def test_a_cohort_names_its_protocols_as_a_plan_comparison_names_its_plans(cohorts, tmp_path: Path) -> None:
    """One wording of a set of protocols (`protocols_compared`): a cohort mixing protocols names them in its cases'
    order, joined by commas (it named them sorted, joined by "; "); a cohort without a plan says so. Where its
    protocols are shown with their hashes (warnings, console, page) each is beside its own: the names in the cases'
    order beside the hashes sorted apart read as pairs they were not."""
    from specc.report.compare import protocols_compared

    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    mixed = dataclasses.replace(first, plans={"p3": second.plans["p3"], **first.plans})
    assert mixed.protocol == protocols_compared(mixed.plans.values()) == "Site v2 v1.0.0, Site v1 v1.0.0"
    [(v2, v2_content)], [(v1, v1_content)] = ({(record.protocol.sha256[:12], record.protocol.content_sha256[:12])
                                               for record in cohort.plans.values()} for cohort in (second, first))
    paired = (f"Site v2 v1.0.0 (SHA-256 {v2}, content SHA-256 {v2_content}), "
              f"Site v1 v1.0.0 (SHA-256 {v1}, content SHA-256 {v1_content})")
    assert mixed.protocols_with_digests == paired
    [said] = [warning for warning in _said([mixed]) if "different protocols" in warning]
    assert said == f"v1: its plans were made with 2 different protocols ({paired})"
    page = render_cohort_comparison([mixed, second])
    shown = [" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r'<span class="compared-protocol">(.*?)</span>(?=<br><span class="compared|</td>)',
                                    page)]
    assert shown[:2] == [f"Site v2 v1.0.0 {v2} content {v2_content}", f"Site v1 v1.0.0 {v1} content {v1_content}"]
    assert dataclasses.replace(first, plans={}).protocol == "(no plan)"


def test_the_cohort_page_of_a_mixed_cohort_gives_each_protocol_its_own_block_in_its_cases_order(
        cohorts, tmp_path: Path) -> None:
    """cohort.html of one run whose cases used two protocols: one block per protocol file (name, SHA-256, content
    SHA-256), each name beside its own hashes, in the order its cases came (`ComparedCohort.protocol_files`). The
    page is written twice, v2's case leading and then v1's, and the blocks swap with the rows: blocks sorted by
    hash or by name either way, or names beside hashes sorted apart, read otherwise in one of the two."""
    import csv
    import shutil

    from specc.report.cohort_page import write_cohort_page

    rows = {}
    for name in ("v1", "v2"):
        with (cohorts[name] / COHORT_CSV).open(newline="") as handle:
            rows[name] = {Path(row["folder"]).name: row for row in csv.DictReader(handle)}
    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    v1, v2 = first.plans["p0"].protocol, second.plans["p3"].protocol
    assert v1.sha256 != v2.sha256 and v1.content_sha256 != v2.content_sha256

    def page_of(label: str, listed: list[dict[str, str]]) -> list[tuple[str, str]]:
        """The provenance rows of cohort.html for v1's cohort plus v2's p3, its cohort.csv listing `listed`."""
        mixed = shutil.copytree(cohorts["v1"], tmp_path / label)
        shutil.copytree(cohorts["v2"] / "p3", mixed / "p3")  # the case v1 did not plan, planned with Site v2
        with (mixed / COHORT_CSV).open("w", newline="") as handle:
            # v2's table adds its worst-case columns, which the page does not read
            writer = csv.DictWriter(handle, fieldnames=list({**rows["v1"]["p0"], **rows["v2"]["p3"]}))
            writer.writeheader()
            writer.writerows({**row, "folder": str(mixed / Path(row["folder"]).name)} for row in listed)
        write_cohort_page(mixed / COHORT_CSV, protocol(GOALS, terms=TERMS, name="Site v1"))
        page = (mixed / "cohort.html").read_text(encoding="utf-8")
        [table] = re.findall(r'<table id="cohort">(.*?)</table>', page, re.S)
        return re.findall(r"<tr><td>([^<]*)</td><td[^>]*>([^<]*)</td></tr>", table)

    orders = {
        "v2_first": ([rows["v2"]["p3"], *rows["v1"].values()], [v2, v1]),
        "v1_first": ([*rows["v1"].values(), rows["v2"]["p3"]], [v1, v2]),
    }
    for label, (listed, in_order) in orders.items():
        shown = page_of(label, listed)
        assert shown[:-2] == [row for info in in_order for row in (
            ("Protocol", f"{info.name} v{info.version}"), ("Protocol SHA-256", info.sha256),
            ("Protocol content SHA-256", info.content_sha256))], label
        assert [name for name, _ in shown[-2:]] == ["Summary file", "Cases"] and "4 with a plan" in shown[-1][1]


def _with_protocol(cohort: ComparedCohort, label: str, **protocol: str | None) -> ComparedCohort:
    """`cohort` relabelled, each plan's protocol record updated with `protocol` (a value None: the field as a
    plan.json written before it was recorded reads)."""
    plans = {case: record.model_copy(update={"protocol": record.protocol.model_copy(update=protocol)})
             for case, record in cohort.plans.items()}
    return dataclasses.replace(cohort, label=label, plans=plans)


def test_a_comment_edit_between_cohorts_is_said_as_one_not_as_an_unversioned_change(cohorts) -> None:
    """The same protocol content from files that differ in a comment (other bytes, one content fingerprint): not
    "changed without a new version" (audit s20/t1 F0); without the fingerprint (older plan.json), the byte rule in
    honest words; within one cohort the same."""
    first = read_cohort(cohorts["v1"] / COHORT_CSV)
    [content] = (protocol.content_sha256 for protocol in first.protocol_files)
    commented = _with_protocol(first, "commented", sha256="ab" * 32)
    [said] = [warning for warning in _said([first, commented]) if "protocol" in warning]
    assert said == (f"the cohorts' protocols share a name and version (v1: Site v1 v1.0.0 (SHA-256 "
                    f"{first.protocol_sha256s[0][:12]}, content SHA-256 {content[:12]}); commented: Site v1 v1.0.0 "
                    f"(SHA-256 abababababab, content SHA-256 {content[:12]})): the protocol files differ in comments, "
                    "formatting or descriptive fields only (description, references, authors, colours) (same content)")
    older = [_with_protocol(cohort, cohort.label, content_sha256=None) for cohort in (first, commented)]
    [said] = [warning for warning in _said(older) if "protocol" in warning]
    assert "content SHA-256" not in said and said.endswith(
        "the protocol files differ; plans written before specc recorded the content fingerprint cannot tell a "
        "comment from a clinical change")
    [one_case, *_] = commented.plans
    mixed = dataclasses.replace(first, plans={**first.plans, one_case: commented.plans[one_case]})
    [said] = [warning for warning in _said([mixed]) if "protocol" in warning]
    assert said.startswith("v1: its plans' protocols share a name and version (Site v1 v1.0.0 (SHA-256 ")
    assert said.endswith("the protocol files differ in comments, formatting or descriptive fields only (description, "
                         "references, authors, colours) (same content)")
    edited = dataclasses.replace(first, plans={**first.plans, one_case: _with_protocol(
        commented, "edited", content_sha256="cd" * 32).plans[one_case]})
    [said] = [warning for warning in _said([edited]) if "protocol" in warning]
    assert said.startswith("v1: its plans were made with 2 different protocols (Site v1 v1.0.0 (SHA-256 ")
    assert said.endswith("so one was changed without a new version")


def test_the_pages_show_the_protocol_and_case_sha256(cohorts, tmp_path: Path) -> None:
    first = read_cohort(cohorts["v1"] / COHORT_CSV)
    [(digest, content)] = ((protocol.sha256, protocol.content_sha256) for protocol in first.protocol_files)
    cohort_html = (cohorts["v1"] / "cohort.html").read_text()
    assert digest in cohort_html
    assert f'<td>Protocol content SHA-256</td><td class="mono">{content}</td>' in cohort_html
    assert all(record.case.sha256[:12] in cohort_html for record in first.plans.values())
    result = CliRunner().invoke(app, ["compare", str(cohorts["v1"]), str(cohorts["v2"]), "--out", str(tmp_path)])
    said = " ".join(result.output.split())
    assert f"v1: Site v1 v1.0.0 (SHA-256 {digest[:12]}, content SHA-256 {content[:12]}); 3 cases planned" in said
    assert "warning: the cohorts' protocols differ" in said
    page = (tmp_path / "compare.html").read_text()
    assert digest[:12] in page
    assert f'<span class="muted">content</span> <span class="mono">{content[:12]}</span>' in page


def test_a_case_id_planned_twice_is_compared_under_its_folder(tmp_path: Path) -> None:
    """Two scans of one patient: the cohort table, its page and the comparison all name them by folder."""
    files = [tmp_path / "scan1.h5", tmp_path / "scan2.h5"]
    for seed, path in enumerate(files):
        dataclasses.replace(synthetic_case(seed=seed), case_id="p0").save(path)
    heavier = [TERMS[0], TERMS[1].replace("weight: 1", "weight: 20")]
    plan_cohort(protocol(GOALS, terms=TERMS, name="Site v1"), files, tmp_path / "v1")
    plan_cohort(protocol(GOALS, terms=heavier, name="Site v2"), files, tmp_path / "v2")
    first, second = (read_cohort(tmp_path / name / COHORT_CSV) for name in ("v1", "v2"))
    assert sorted(first.plans) == sorted(second.plans) == ["p0", "p0-2"]
    assert not [warning for warning in _said([first, second]) if "case SHA-256 differs" in warning]
    organ = next(row for row in cohort_goal_rows([first, second]) if row.structure == "Organ")
    assert organ.paired_cases == 2
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "v1"), str(tmp_path / "v2"), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output


def _listed_twice(cohort: Path, into: Path, case: str) -> Path:
    """A copy of `cohort` in which `case` is listed twice, as `specc cohort` plans a case file given twice:
    its plan again in a folder numbered -2, and a second row."""
    import csv
    import shutil

    copy = shutil.copytree(cohort, into)
    shutil.copytree(copy / case, copy / f"{case}-2")
    with (copy / COHORT_CSV).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    again = {**next(row for row in rows if Path(row["folder"]).name == case), "folder": str(copy / f"{case}-2")}
    with (copy / COHORT_CSV).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, again])
    return copy


def test_a_case_listed_twice_is_counted_once_and_said(cohorts, tmp_path: Path) -> None:
    first, second = (read_cohort(_listed_twice(cohorts[name], tmp_path / name, "p0") / COHORT_CSV) for name in ("v1", "v2"))
    once = [read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2")]
    organ = next(row for row in cohort_goal_rows([first, second]) if row.structure == "Organ")
    expected = next(row for row in cohort_goal_rows(once) if row.structure == "Organ")
    assert [sum(counts.values()) for counts in organ.counts] == [3, 4]  # as if listed once
    assert organ.medians == expected.medians and (organ.paired_cases, organ.paired_median) == (3, expected.paired_median)
    assert first.repeated == {"p0-2": "p0"} and sorted(first.counted) == ["p0", "p1", "p2"] and len(first.plans) == 4
    warnings = _said([first, second])
    digest = first.plans["p0"].case.sha256[:12]
    assert f"v1: p0-2 is the same case as p0 (case SHA-256 {digest}), listed twice: counted once in the goal statistics" \
        in warnings and not [warning for warning in warnings if "no plan for p0-2" in warning]
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "v1"), str(tmp_path / "v2"), "--out", str(tmp_path / "cmp")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "4 cases planned (1 listed twice, counted once)" in said, result.output
    assert "(1 listed twice, counted once)" in (tmp_path / "cmp" / "compare.html").read_text()


def test_one_case_is_said_in_the_singular(cohorts, tmp_path: Path) -> None:
    import shutil

    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    unplanned = dataclasses.replace(first, unplanned=["p9 (not a readable HDF5 file)"])
    assert "v1: 1 case without a plan: p9 (not a readable HDF5 file)" in _said([unplanned, second])
    one = shutil.copytree(cohorts["v1"], tmp_path / "v1")
    with (one / COHORT_CSV).open(newline="") as handle:
        lines = handle.readlines()
    (one / COHORT_CSV).write_text("".join(lines[:2]), encoding="utf-8")  # the header and one case
    result = CliRunner().invoke(app, ["compare", str(one), str(cohorts["v2"]), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0 and "; 1 case planned" in " ".join(result.output.split()), result.output


def test_the_comparison_page_gives_its_time_and_the_protocols_versions(cohorts) -> None:
    """The cohort comparison said nowhere when it was made, and its PDF had no author, creator or date (audit s21/p1
    F4, F8, found on the plan comparison, which shares its frame)."""
    compared = [read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2")]
    before = datetime.now(timezone.utc).replace(microsecond=0)
    html = render_cohort_comparison(compared)
    version = next(iter(compared[0].plans.values())).specc_version
    stamp = re.search(rf"Compared (\S+ \S+) UTC by specc {re.escape(version)}\. Each case", html)
    assert stamp is not None
    assert before <= datetime.fromisoformat(stamp.group(1)).replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc)
    assert '<meta name="author" content="specc">' in html and f'<meta name="generator" content="specc {version}">' in html
    created = datetime.fromisoformat(stamp.group(1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert f'<meta name="dcterms.created" content="{created}+00:00">' in html
    assert "<title>Cohort comparison: v1 vs v2 (Site v1 v1.0.0, Site v2 v1.0.0)</title>" in html


def test_every_header_row_of_the_cohort_and_comparison_pages_repeats_on_a_page_a_table_runs_onto(cohorts) -> None:
    """The plan report's tables repeat their column names on each printed page (a <thead>, audit s21/p1 F1); the
    cohort page, the plans' and the cohorts' comparisons printed theirs once, on the first page a table took."""
    from specc.report.cohort_page import COHORT_PAGE
    from specc.report.compare import read_plans, render_comparison
    from test_report_html import HeaderRows

    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    plans = [cohorts["v1"] / "p0", cohorts["v2"] / "p0"]
    pages = {
        "cohort.html": (cohorts["v1"] / f"{COHORT_PAGE}.html").read_text(encoding="utf-8"),
        "compare_cohorts.html": render_cohort_comparison([first, second]),
        "compare.html": render_comparison(read_plans(plans, ["v1", "v2"])),
    }
    for name, page in pages.items():
        parser = HeaderRows()
        parser.feed(page)
        assert (parser.loose, parser.headed >= 2) == ([], True), name


def test_the_console_says_a_cohort_without_a_plan_has_none(cohorts, tmp_path: Path) -> None:
    """A cohort that planned no case has no protocol to name nor hash: "v2: no plan", not "(no plan) (protocol
    SHA-256 n/a)"."""
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / COHORT_CSV).write_text("case_id,case_file,folder,error\np0,case0.h5,,not a readable HDF5 file\n")
    result = CliRunner().invoke(app, ["compare", str(cohorts["v1"]), str(failed), "--out", str(tmp_path / "out")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "failed: no plan; 0 cases planned" in said and "n/a" not in said


def test_the_cohort_and_comparison_pages_each_give_their_author_generator_and_time(cohorts) -> None:
    """The three pages share their frame's document information (comparison_base.html): specc as author, the
    running specc as generator, the time the page was written, the one its header gives, and a description that
    names what the page compares (or, the cohort page, what it is of)."""
    from specc import __version__
    from specc.report.cohort_page import COHORT_PAGE
    from specc.report.compare import read_plans, render_comparison

    first, second = (read_cohort(cohorts[name] / COHORT_CSV) for name in ("v1", "v2"))
    pages = {
        "cohort.html": (cohorts["v1"] / f"{COHORT_PAGE}.html").read_text(encoding="utf-8"),
        "compare_cohorts.html": render_cohort_comparison([first, second]),
        "compare.html": render_comparison(read_plans([cohorts["v1"] / "p0", cohorts["v2"] / "p0"], ["v1", "v2"])),
    }
    # what each page's description names: what it compares (its labels with their protocols), or what it is of
    compared = {
        "cohort.html": ["Cohort: Site v1 v1.0.0", "3 cases", str(cohorts["v1"] / COHORT_CSV)],
        "compare_cohorts.html": ["v1: Site v1 v1.0.0", "v2: Site v2 v1.0.0"],
        "compare.html": ["v1: Site v1 v1.0.0 on p0", "v2: Site v2 v1.0.0 on p0"],
    }
    for name, page in pages.items():
        head = page.split("</head>")[0]
        assert head.count('<meta name="author" content="specc">') == 1, name
        assert head.count(f'<meta name="generator" content="specc {__version__}">') == 1, name
        [created] = re.findall(r'<meta name="dcterms.created" content="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\+00:00">', head)
        written = datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M:%S")
        assert re.search(rf'class="running-title">[^<]* (written|compared) {written} UTC<', page), name
        [description] = re.findall(r'<meta name="description" content="([^"]*)">', head)
        assert all(what in unescape(description) for what in compared[name]), (name, description)


def test_a_comparison_page_without_a_description_is_not_written() -> None:
    """comparison_base.html requires each page's description block: a page that forgot it would write an empty
    description (the PDF's /Subject) without a word."""
    from jinja2 import TemplateRuntimeError

    from specc.report.html import environment

    undescribed = environment().from_string('{% extends "comparison_base.html" %}')
    with pytest.raises(TemplateRuntimeError, match="description"):
        undescribed.render(heading="Cohort comparison", names="v1 vs v2", warnings=[], not_converged=[], css="",
                           written="2024-01-01T00:00:00+00:00", specc_version="0")
