"""The comparison table: our results files read, aggregated over label splits and set next to the paper."""

import json

import numpy as np
import pytest

from vae_utils import compare

M2_ERRORS = {100: [9.1, 12.4, 10.0], 600: [4.2]}  # test error (%) per split seed: 0, 1, 2


def _write(path, metrics, profile="full"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"notebook": path.stem, "profile": profile, "metrics": metrics}))
    return path


def _write_m2(results, n, seed, error, profile="full"):
    run = {"val_error": error - 0.5, "best_epoch": 12, "epochs": 20}
    metrics = {
        "n_labelled": n,
        "split_seed": seed,
        "m2": {"test_error": error, **run},
        "m1m2": {"test_error": error / 2, **run},
    }
    return _write(
        results / "06_semi_supervised_m2" / f"N_LABELLED={n}_SPLIT_SEED={seed}.json", metrics, profile
    )


def _per_n(errors):
    return {
        str(n): {
            "errors": e,
            "mean": float(np.mean(e)),
            "std": float(np.std(e, ddof=1)) if len(e) > 1 else 0.0,
        }
        for n, e in errors.items()
    }


@pytest.fixture
def results(tmp_path):
    """A results folder with notebook 06's per-split files and notebook 07's baselines."""
    for n, errors in M2_ERRORS.items():
        for seed, error in enumerate(errors):
            _write_m2(tmp_path, n, seed, error)
    baselines = {"pca_svm": _per_n({100: [30.0, 32.0]}), "dense": _per_n({100: [25.0]})}
    _write(tmp_path / "07_baselines_and_comparison.json", {**baselines, "cnn": _per_n({3000: [2.5, 2.7]})})
    return tmp_path


def test_m2_files_are_aggregated_over_split_seeds_as_mean_and_sample_std(results):
    ours = compare.collect(results)
    for method, scale in (("m2", 1.0), ("m1m2", 0.5)):
        for n, errors in M2_ERRORS.items():
            row = ours[(ours.method == method) & (ours.N == n)].iloc[0]
            expected = scale * np.array(errors)
            assert row["mean"] == pytest.approx(np.mean(expected))
            # the sample std, as 05 and 07 give it; one split has none
            sample_std = np.std(expected, ddof=1) if len(errors) > 1 else np.nan
            assert row["std"] == pytest.approx(sample_std, nan_ok=True)
            assert row["n_seeds"] == len(errors)
            assert row["source"] == "ours, notebook 06"
    assert ours[ours.method == "pca_svm"].iloc[0][["N", "mean", "std", "n_seeds"]].tolist() == [
        100,
        31,
        2**0.5,
        2,
    ]


def test_results_of_another_profile_are_ignored(results):
    _write_m2(results, 100, 3, 99.0, profile="smoke")  # a smoke run beside the full ones
    _write(results / "05_semi_supervised_m1.json", {"m1_svm": _per_n({100: [88.0]})}, profile="smoke")
    ours = compare.collect(results)
    assert ours[(ours.method == "m2") & (ours.N == 100)].iloc[0]["mean"] == pytest.approx(
        np.mean(M2_ERRORS[100])
    )
    assert "m1_svm" not in set(ours.method)
    smoke = compare.collect(results, profile="smoke")
    assert set(smoke.method) == {"m2", "m1m2", "m1_svm"} and smoke["n_seeds"].tolist() == [1, 1, 1]


def test_missing_results_files_leave_only_the_published_rows(tmp_path):
    assert compare.collect(tmp_path).empty
    table = compare.markdown_table(compare.collect(tmp_path))
    assert table.count("Kingma et al. (2014), Table 1") == 5 and "ours, notebook" not in table


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("05_semi_supervised_m1.json", "{not json", "JSON"),
        ("05_semi_supervised_m1.json", {"profile": "full"}, '"metrics"'),
        ("05_semi_supervised_m1.json", {"profile": "full", "metrics": {"m1": {}}}, "at least one of"),
        (
            "07_baselines_and_comparison.json",
            {"profile": "full", "metrics": {"cnn": {"100": {"mean": 3.0, "std": 0.1}}}},  # no errors list
            '"errors"',
        ),
        (
            "06_semi_supervised_m2/N_LABELLED=100_SPLIT_SEED=0.json",
            {"profile": "full", "metrics": {"n_labelled": 100, "split_seed": 0, "m2": {"val_error": 3.0}}},
            "test_error",
        ),
        (
            "06_semi_supervised_m2/N_LABELLED=100_SPLIT_SEED=0.json",
            {"profile": "full", "metrics": {"n_labelled": "100", "split_seed": 0, "m2": {"test_error": 3.0}}},
            "n_labelled",
        ),
    ],
)
def test_a_malformed_results_file_is_named_in_the_error(tmp_path, name, content, expected):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match="expected") as error:
        compare.collect(tmp_path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_two_files_for_the_same_split_are_an_error(results):
    first = results / "06_semi_supervised_m2" / "N_LABELLED=100_SPLIT_SEED=0.json"
    first.with_name("N_LABELLED=100_SPLIT_SEED=0_EPOCHS=5.json").write_text(first.read_text())  # a sweep
    with pytest.raises(ValueError, match="already read"):
        compare.collect(results)


def test_markdown_table_sets_our_aggregate_next_to_the_published_numbers(results):
    table = compare.markdown_table(compare.collect(results))
    m2 = f"{np.mean(M2_ERRORS[100]):.2f} ± {np.std(M2_ERRORS[100], ddof=1):.2f}"
    assert "| M2 | ours, notebook 06 | 3 / 1 / — / — | " + m2 in table
    assert "| M1 + M2 | Kingma et al. (2014), Table 1 | — | 3.33 ± 0.14 | 2.59 ± 0.05 |" in table
    assert "| PCA + SVM | ours, notebook 07 | 2 | 31.00 ± 1.41 | — |" in table
    assert "| dense network | ours, notebook 07 | 1 | 25.00 | — |" in table
    assert "| 74 | — | — | — |" in table  # the blog post's CNN: 26 % accuracy at N = 100 only


def test_plot_draws_ours_solid_and_published_dashed(results):
    fig = compare.plot(compare.collect(results))
    ax = fig.axes[0]
    styles = {
        line.get_label(): line.get_linestyle() for line in ax.get_lines() if not line.get_label()[0] == "_"
    }
    assert styles["M1 + M2 (Kingma et al. 2014)"] == "--" and styles["CNN (blog post)"] == "--"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert {"M2 (ours)", "M1 + M2 (ours)", "CNN (ours)"} <= set(legend)
    assert ax.get_xscale() == "log"


def test_readme_rewrite_replaces_only_the_text_between_the_markers(results, tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro\n", "\n\n## Next\n\nkept as it is\n"
    readme.write_text(f"{before}{compare.START}\nold table\n{compare.END}{after}")
    assert compare.main(["--results-dir", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    table = compare.markdown_table(compare.collect(results))
    assert text == f"{before}{compare.START}\n{table}\n{compare.END}{after}"
    assert "old table" not in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".README")] == []  # no temporary left


@pytest.mark.parametrize("markers", ["", compare.START, compare.END, f"{compare.END}\n{compare.START}"])
def test_readme_without_both_markers_is_an_error_and_left_alone(results, tmp_path, markers, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n{markers}\n")
    with pytest.raises(ValueError, match="expected the markers"):
        compare.update_readme(readme, "| table |")
    assert compare.main(["--results-dir", str(results), "--readme", str(readme)]) == 1
    assert "markers" in capsys.readouterr().err
    assert readme.read_text() == f"# Title\n{markers}\n"


def test_the_readme_table_is_the_one_the_committed_results_give():
    readme = (compare.RESULTS_DIR.parent / "README.md").read_text()
    start, end = readme.index(compare.START) + len(compare.START), readme.index(compare.END)
    expected = compare.markdown_table(compare.collect())
    hint = "regenerate it: python -m vae_utils.compare --readme README.md"
    assert readme[start:end].strip() == expected.strip(), hint


def test_a_split_file_with_m1m2_only_gives_an_m1m2_row_and_no_m2_row(tmp_path):
    # notebook 06 with M2_EPOCHS = 0 trains M1+M2 only
    metrics = {"n_labelled": 1000, "split_seed": 0, "m1m2": {"test_error": 2.5, "val_error": 2.4}}
    _write(tmp_path / "06_semi_supervised_m2" / "N_LABELLED=1000_SPLIT_SEED=0.json", metrics)
    ours = compare.collect(tmp_path)
    assert ours[["method", "N", "mean", "n_seeds"]].values.tolist() == [["m1m2", 1000, 2.5, 1]]


def test_staged_files_replace_the_published_ones_and_the_rest_is_read_from_the_results(results, tmp_path):
    # notebook 07 while it runs: its own metrics are staged, notebook 06's are published
    staged = tmp_path / "staging"
    _write(staged / "07_baselines_and_comparison.json", {"pca_svm": _per_n({100: [40.0]})})
    ours = compare.collect(results, staged=staged)
    assert ours[ours.method == "pca_svm"]["mean"].tolist() == [40.0]
    assert "dense" not in set(ours.method)  # the published 07 file is replaced, not merged
    assert set(ours[ours.method == "m2"].N) == set(M2_ERRORS)
