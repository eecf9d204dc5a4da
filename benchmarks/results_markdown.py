"""Write docs/results.md from the saved paper-table results: every table beside the paper's numbers.

    python benchmarks/results_markdown.py

For each table it takes the full-mode result (benchmarks/results/paper_table_<n>.json) when present, else
the quick one (marked as quick); each section names the command, date and machine that produced it and
says where we are worse than the paper.
"""

from __future__ import annotations

import json

import _paper as paper
from _common import RESULTS, ROOT

DOC = ROOT / "docs" / "results.md"


def _load(n):
    """(file name, result) of paper table `n` (1..6 or e.g. "3_base"): full mode when present, else quick."""
    for name in (f"paper_table_{n}.json", f"paper_table_{n}_quick.json"):
        if (RESULTS / name).exists():
            return name, json.loads((RESULTS / name).read_text())
    return None, None


def _pct(value) -> str:
    return "-" if value is None or value != value else f"{100 * value:.2f}"


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def _provenance(name: str, r: dict) -> list[str]:
    quick = ""
    if r["mode"] == "quick":
        quick = " **(quick mode: small subsets, few epochs — not comparable to the paper's full runs)**"
    return [f"Source `benchmarks/results/{name}`{quick}; command `{r['command']}`; {r['date']}; "
            f"{r['machine']}, {r['cpu_count']} CPUs, torch {r['torch_version']} ({r['torch_threads']} threads); "
            f"{r.get('n_train', r.get('supervised_n_train', '?'))} training images, "
            f"{r.get('n_test', r.get('n_mnist_probes', '?'))} test probes, K = {r['setting_n_regenerations']}.", ""]


def _worse(r: dict, keys: list[str], higher_is_better: bool = True) -> list[str]:
    worse = [k for k in keys if f"paper_{k}" in r and k in r
             and ((r[k] < r[f"paper_{k}"]) if higher_is_better else (r[k] > r[f"paper_{k}"]))]
    if not worse:
        return ["At least as good as the paper in every cell.", ""]
    show = _pct if not keys[0].startswith("pmiss") else (lambda v: f"{v:.3f}")
    gaps = ", ".join(f"{k} {show(r[k])} vs {show(r['paper_' + k])}" for k in worse[:6])
    return [f"**Worse than the paper in {len(worse)} of {len(keys)} cells** ({gaps}{', ...' if len(worse) > 6 else ''}).", ""]


def threshold_section(n, title: str, published: dict, intro: str = "") -> list[str]:
    name, r = _load(n)
    lines = [f"## Table {title}", ""] + ([intro, ""] if intro else [])
    if r is None:
        return lines + ["Not run yet.", ""]
    latents = sorted(published, reverse=True)
    thresholds = [t for t in published[latents[0]] if t != paper.NO_REJECTION]
    header = ["Thr"] + [f"{c} z={z}" for z in latents for c in ("Acc % ours (paper)", "P_miss ours (paper)")]
    rows = []
    for t in [*thresholds, paper.NO_REJECTION]:
        key = "none" if t == paper.NO_REJECTION else f"thr{t}"
        row = ["no rejection" if t == paper.NO_REJECTION else t]
        for z in latents:
            row.append(f"{_pct(r[f'acc_latent{z}_{key}'])} ({_pct(r[f'paper_acc_latent{z}_{key}'])})")
            row.append("-" if key == "none" else f"{r[f'pmiss_latent{z}_{key}']:.3f} ({r[f'paper_pmiss_latent{z}_{key}']})")
        rows.append(row)
    keys = [f"acc_latent{z}_{'none' if t == paper.NO_REJECTION else f'thr{t}'}" for z in latents
            for t in [*thresholds, paper.NO_REJECTION]]
    missed = [f"pmiss_latent{z}_thr{t}" for z in latents for t in thresholds]
    return (lines + _provenance(name, r) + _md_table(header, rows) + [""]
            + ["Accuracy (higher is better):"] + _worse(r, keys)
            + ["P_miss (lower is better):"] + _worse(r, missed, higher_is_better=False)
            + _likelihood_rows(r, latents, thresholds))


def _likelihood_rows(r: dict, latents: list, thresholds: list) -> list[str]:
    """The same models scored with regentree's likelihood rule (keys lik_*), when the run recorded them."""
    if not all(f"lik_acc_latent{z}_none" in r for z in latents):
        return []
    header = ["Thr"] + [f"{c} z={z}" for z in latents for c in ("Acc %", "P_miss")]
    rows = []
    for t in [*thresholds, paper.NO_REJECTION]:
        key = "none" if t == paper.NO_REJECTION else f"thr{t}"
        row = ["no rejection" if t == paper.NO_REJECTION else t]
        for z in latents:
            row += [_pct(r[f"lik_acc_latent{z}_{key}"]), "-" if key == "none" else f"{r[f'lik_pmiss_latent{z}_{key}']:.3f}"]
        rows.append(row)
    return (["The same models with regentree's likelihood rule (distance `neg_log_weight`, decision `likelihood`; "
             "not the paper's method):", ""] + _md_table(header, rows) + [""])


def tree_section() -> list[str]:
    """Flat vs tree on each data set (benchmarks/tree_vs_flat.py), full mode when present."""
    for name in ("tree_vs_flat.json", "tree_vs_flat_quick.json"):
        if (RESULTS / name).exists():
            r = json.loads((RESULTS / name).read_text())
            break
    else:
        return []
    lines = ["## Flat vs tree", "",
             "Not in the paper (it proposes the tree in section III without results). Each data set trains one flat and "
             "one tree model (balanced tree from class-mean distances) with the same VAE settings and scores the same "
             "probes with flat and with routings of the same tree: pure hard routing, hard routing that compares the "
             "leaves of a node of at most `flat_below` classes directly (flat-below), and soft routing (beam 2), batch "
             "by batch in alternating order, so probes/s are measured side by side.", ""]
    header = ["data", "M", "depth", "flat acc %", "tree hard acc %", "flat-below acc %", "tree soft acc %",
              "VAE evals / probe flat, hard (max), flat-below (max), soft",
              "probes/s vs flat: hard, flat-below", "VAE training s flat / tree (sum over VAEs)", "source"]
    rows = []
    for data in ("mnist", "fashion_mnist", "emnist_bymerge"):
        if f"{data}_n_classes" not in r:
            continue
        g = lambda k: r[f"{data}_{k}"]  # noqa: E731
        has_fb = f"{data}_tree_flat_below_accuracy" in r
        fb = (lambda k, f: f(g(f"tree_flat_below_{k}")) if has_fb else "-")  # noqa: E731
        mode = g("mode") if f"{data}_mode" in r else r.get("mode", "?")
        rows.append([data, g("n_classes"), g("tree_depth"), _pct(g("flat_accuracy")), _pct(g("tree_hard_accuracy")),
                     fb("accuracy", _pct), _pct(g("tree_soft_accuracy")),
                     f"{g('flat_vae_evaluations_mean'):.0f}, {g('tree_hard_vae_evaluations_mean'):.1f} "
                     f"({g('tree_hard_vae_evaluations_max')}), "
                     + (f"{g('tree_flat_below_vae_evaluations_mean'):.1f} ({g('tree_flat_below_vae_evaluations_max')}), "
                        if has_fb else "-, ")
                     + f"{g('tree_soft_vae_evaluations_mean'):.1f}",
                     f"{g('tree_hard_speedup_vs_flat'):.2f}x, " + fb("speedup_vs_flat", lambda v: f"{v:.2f}x"),
                     f"{g('flat_training_seconds'):.0f} / {g('tree_hard_training_seconds'):.0f}",
                     f"{mode}, {r.get(f'{data}_decision', 'mean')} rule, {g('n_test')} probes, "
                     f"K = {r.get(f'{data}_n_regenerations', r.get('n_regenerations'))}, "
                     + (f"flat_below {g('flat_below')}, " if has_fb else "")
                     + f"{r.get(f'{data}_training_precision', 'float32')} training, {r.get(f'{data}_date', r['date'])[:10]}"])
    source = [f"Source `benchmarks/results/{name}`; the command and date of each row are in the file.", ""]
    return lines + source + _md_table(header, rows) + [""]


def large_label_sets_section() -> list[str]:
    """Many classes, few images each (benchmarks/large_label_sets.py): one row per set, full mode when present."""
    for name in ("large_label_sets.json", "large_label_sets_quick.json"):
        if (RESULTS / name).exists():
            r = json.loads((RESULTS / name).read_text())
            break
    else:
        return []
    lines = ["## Large label sets, few images per class", "",
             "Not in the paper. Flat and tree with the same VAE settings and the estimators' defaults (base VAE "
             "under `base_epochs=\"auto\"`, hard routing with `flat_below`), the same tree with soft routing "
             "(beam 2), and a softmax MLP and 1-NN trained on the same images; accuracy at a coverage keeps the "
             "most confident probes (KL for the VAE models, max softmax for the MLP). Training is wall time on 2 "
             "cores.", "",
             f"Source `benchmarks/results/{name}`; the command and date of each row are in the file.", ""]
    header = ["row", "M x train/class", "flat acc %", "tree acc %", "tree - flat pt", "tree soft-2 acc %",
              "MLP acc %", "1-NN acc %",
              "acc % at 90 % coverage flat / tree / MLP", "AURC flat / tree", "VAE evals / probe flat / tree / soft-2",
              "probes/s flat / tree / soft-2", "training s flat / tree", "peak RSS MiB training tree / scoring"]
    rows = []
    for row in r.get("rows", []):
        g = lambda k: r[f"{row}_{k}"]  # noqa: E731
        rows.append([row, f"{g('n_classes')} x {g('train_per_class_median'):.0f}", _pct(g("flat_accuracy")),
                     _pct(g("tree_accuracy")), f"{g('tree_accuracy_gap_pt'):+.1f}", _pct(g("tree_soft2_accuracy")),
                     _pct(g("mlp_accuracy")),
                     _pct(g("knn1_accuracy")),
                     " / ".join(_pct(g(f"{k}_accuracy_at_coverage_90")) for k in ("flat", "tree", "mlp")),
                     f"{g('flat_aurc'):.3f} / {g('tree_aurc'):.3f}",
                     f"{g('flat_vae_evaluations_mean'):.0f} / {g('tree_vae_evaluations_mean'):.1f} / "
                     f"{g('tree_soft2_vae_evaluations_mean'):.1f}",
                     " / ".join(f"{g(f'{k}_probes_per_s'):.1f}" for k in ("flat", "tree", "tree_soft2")),
                     f"{g('flat_training_seconds'):.0f} / {g('tree_training_seconds'):.0f}",
                     f"{g('tree_training_peak_rss_mb'):.0f} / {g('scoring_peak_rss_mb'):.0f}"])
    return lines + _md_table(header, rows) + [""] + routings_section()


def routings_section(name: str = "large_label_sets_beam.json") -> list[str]:
    """The same few-shot rows with every routing of the tree side by side (large_label_sets.py's TREE_VARIANTS)."""
    if not (RESULTS / name).exists():
        return []
    r = json.loads((RESULTS / name).read_text())
    lines = ["### Routings of the same tree side by side", "",
             "One flat and one tree model per row, the tree scored with every routing on the same probes: the "
             "default (`routing=\"auto\"`, gated with `beam_share` 0.5 on these small classes), hard (greedy, "
             "`flat_below` 6), soft (beam 2) and the KL-gated beam (beam 2 kept only at steps whose KL is under "
             "the `beam_share` quantile of that depth's held-out step KLs) at other shares. Probes/s are measured "
             "batch by batch in alternating order on a shared 2-core machine, so they are loose.", "",
             f"Source `benchmarks/results/{name}`; the command and date of each row are in the file.", ""]
    header = ["row", "routing", "acc %", "- flat pt", "acc % at 90 % coverage", "AURC", "VAE evals / probe",
              "probes/s", "x flat's probes/s"]
    rows = []
    for row in r.get("rows", []):
        kinds = [k[len(row) + 1: -len("_vae_evaluations_mean")] for k in r
                 if k.startswith(f"{row}_") and k.endswith("_vae_evaluations_mean")]
        for kind in kinds:
            g = lambda k: r[f"{row}_{kind}_{k}"]  # noqa: E731
            routing = {"flat": "flat", "tree": f"tree, default ({r[f'{row}_tree_routing']}, share "
                                               f"{r.get(f'{row}_tree_beam_share', '-')})"}.get(kind, kind)
            gap = 100 * (g("accuracy") - r[f"{row}_flat_accuracy"])
            rows.append([row, routing, _pct(g("accuracy")), "-" if kind == "flat" else f"{gap:+.1f}",
                         _pct(g("accuracy_at_coverage_90")), f"{g('aurc'):.3f}", f"{g('vae_evaluations_mean'):.1f}",
                         f"{g('probes_per_s'):.1f}", f"{g('probes_per_s') / r[f'{row}_flat_probes_per_s']:.2f}"])
    return lines + _md_table(header, rows) + [""]


def tabular_section() -> list[str]:
    """Regentree vs four scikit-learn classifiers on scikit-learn's bundled tables (benchmarks/tabular.py), one
    table per regentree input that was run (min-max scaled and clipped pixels; raw features, Gaussian decoder)."""
    names = [n for n in ("tabular.json", "tabular_raw.json") if (RESULTS / n).exists()]
    names = names or [n for n in ("tabular_quick.json",) if (RESULTS / n).exists()]
    if not names:
        return []
    lines = ["## Tabular data: regentree vs scikit-learn classifiers", ""]
    for name in names:
        lines += _tabular_table(name, json.loads((RESULTS / name).read_text()))
    return lines


def _tabular_table(name: str, r: dict) -> list[str]:
    """One tabular result file as a sub-section: setup, the table, regentree's gaps to the best other method."""
    quick = " **(quick mode: tiny VAEs, a few epochs)**" if r["mode"] == "quick" else ""
    available = [d for d in r["datasets"] if r[f"{d}_available"]]
    missing = [f"{d} ({r[f'{d}_reason']})" for d in r["datasets"] if not r[f"{d}_available"]]
    lines = [f"### Regentree input: `{r['regentree_input']}`", "",
             f"Not in the paper. scikit-learn's bundled data sets, {r['n_splits']} seeded stratified "
             f"{round(100 * (1 - r['test_size']))}/{round(100 * r['test_size'])} splits, every method on the same "
             f"splits; regentree's input: `{r['regentree_input']}`; cells are means over the splits. Accuracy at "
             f"{round(100 * r['coverage'])} % coverage keeps the most confident probes (KL for regentree, max "
             "predict_proba for the others); fit and predict seconds on one thread."
             + (f" Not run: {'; '.join(missing)}." if missing else ""), "",
             f"Source `benchmarks/results/{name}`{quick}; command `{r['command']}`; {r['date']}; {r['machine']}, "
             f"{r['cpu_count']} CPUs, torch {r['torch_version']}.", ""]
    header = ["data set (n x features, classes)", "method", "acc %", f"acc % at {round(100 * r['coverage'])} % coverage",
              "AURC", "fit s", "predict s"]
    rows = []
    for d in available:
        g = lambda k: r[f"{d}_{k}"]  # noqa: E731
        size = f"{d} ({g('n_samples')} x {g('n_features')}, {g('n_classes')})"
        for method in g("methods_by_accuracy"):
            rows.append([size, method, f"{_pct(g(f'{method}_accuracy_mean'))} ± {100 * g(f'{method}_accuracy_std'):.2f}",
                         _pct(g(f"{method}_accuracy_at_coverage_{round(100 * r['coverage'])}_mean")),
                         f"{g(f'{method}_aurc_mean'):.4f}", f"{g(f'{method}_fit_seconds_mean'):.2f}",
                         f"{g(f'{method}_predict_seconds_mean'):.3f}"])
            size = ""
    gaps = [f"{d} {r[f'{d}_regentree_flat_minus_best_other_accuracy_pt']:+.2f} pt (flat), "
            f"{r[f'{d}_regentree_tree_minus_best_other_accuracy_pt']:+.2f} pt (tree)" for d in available]
    others = {d: [m for m in r[f"{d}_methods_by_accuracy"] if not m.startswith("regentree")] for d in available}
    aurcs = [f"{d} {r[f'{d}_regentree_flat_aurc_mean']:.4f} vs {min(r[f'{d}_{m}_aurc_mean'] for m in others[d]):.4f}"
             for d in available]
    return lines + _md_table(header, rows) + [
        "", "Regentree minus the best other method, accuracy: " + "; ".join(gaps) + ".", "",
        "AURC (lower is better), regentree flat vs the lowest of the others: " + "; ".join(aurcs) + ".", ""]


def sigma_section(n: int, title: str, latents: list[int], latent_table: int, note: str = "") -> list[str]:
    """Tables II/IV; the sigma^2 = 1 column comes from the latent table (I/III) of the same mode."""
    name, r = _load(n)
    lines = [f"## Table {title}", ""]
    if r is None:
        return lines + ["Not run yet.", ""]
    _, reference = _load(latent_table)
    same_mode = reference is not None and reference["mode"] == r["mode"]
    sigmas = (0.5, 0.75, 1.25)
    header = ["latent"] + [f"sigma^2={s:g}: Acc % ours (paper)" for s in sigmas] + ["sigma^2=1 (Table I/III)"]
    rows = [[z] + [f"{_pct(r.get(f'acc_latent{z}_sigma2_{s:g}'))} ({_pct(r.get(f'paper_acc_latent{z}_sigma2_{s:g}'))})"
                   for s in sigmas]
            + [f"{_pct(reference[f'acc_latent{z}_none']) if same_mode else '-'} "
               f"({_pct(reference.get(f'paper_acc_latent{z}_none')) if reference else '-'})"]
            for z in latents]
    keys = [f"acc_latent{z}_sigma2_{s:g}" for z in latents for s in sigmas]
    return lines + _provenance(name, r) + ([note, ""] if note else []) + _md_table(header, rows) + [""] + _worse(r, keys)


def _table_v_errors(r: dict, n: int) -> list[float]:
    """Every error measured at N labels: from scratch, and (newer runs) from the base VAE with and without self-training."""
    keys = ([f"error_n{n}", f"error_n{n}_base", f"error_n{n}_base_self_training"] if f"error_n{n}_base" in r
            else [f"error_n{n}", f"error_n{n}_self_training"])
    return [r[k] for k in keys]


def table_v_section() -> list[str]:
    name, r = _load(5)
    lines = ["## Table V — limited labels, MNIST (test error %)", ""]
    if r is None:
        return lines + ["Not run yet.", ""]
    ns = (600, 1000, 3000)
    header = ["N labelled", "ours from scratch", "ours from the base VAE",
              f"base VAE + self-training (KL >= {r['self_training_kl_threshold']:g})",
              "pseudo-labels added (their accuracy %)", "paper (proposed)", "paper M1+M2"]
    rows = [[n, *(_pct(e) for e in _table_v_errors(r, n)),
             f"{r[f'pseudo_labels_n{n}_base']} ({_pct(r[f'pseudo_label_accuracy_n{n}_base'])})",
             paper.TABLE_V["proposed"][n], paper.TABLE_V["M1+M2"][n]] for n in ns]
    rows.append([f"all ({r['supervised_n_train']})", _pct(r["error_supervised"]), "-", "-", "-",
                 paper.TABLE_V["proposed"]["supervised"], paper.TABLE_V["M1+M2"]["supervised"]])
    best = {f"best_error_n{n}": min(_table_v_errors(r, n)) for n in ns}
    r = {**r, **best, **{f"paper_best_error_n{n}": r[f"paper_error_n{n}"] for n in ns}}
    training = r["limited_label_training"]
    notes = [f"Limited-label models train {training['epochs']} epochs without early stopping (all N images train: "
             f"early stopping on 10 % of 60 images per class stopped them far too early). *From the base VAE* "
             f"(regentree's `base_epochs`, not in the paper): every class VAE starts from one VAE trained for "
             f"{r['base_epochs']} epochs on all 60,000 training images with their labels unused. Self-training: that "
             f"model classifies a pool of {r['n_unlabelled_pool']} unlabelled training images; those kept by the KL "
             f"rule join their predicted class and every class VAE is re-trained from the base for "
             f"{r['self_training_epochs']} epochs ({r['self_training_rounds']} round"
             f"{'s' if r['self_training_rounds'] != 1 else ''}). The comparison with the paper "
             "below takes the best column.", ""]
    return lines + _provenance(name, r) + _md_table(header, rows) + [""] + notes + _worse(r, list(best) + ["error_supervised"],
                                                                                          higher_is_better=False)


def _novelty_note() -> list[str]:
    """The same pair with regentree's novelty + KL rule (benchmarks/rejection.py), when that result exists."""
    path = RESULTS / "rejection.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    key = "mnist_vs_fashion_mnist__regentree_both__"
    if f"{key}unseen_rejected" not in r:
        return []
    return [f"The KL rule only compares the two best classes, so a Fashion image with one clearly closest digit "
            f"class is kept. regentree's novelty and KL rules together (not in the paper; `benchmarks/rejection.py`, "
            f"`rejection.json`, thresholds calibrated to reject <= 5 % of known probes) reject {_pct(r[key + 'unseen_rejected'])} % of Fashion probes while rejecting "
            f"{_pct(r[key + 'known_rejected'])} % of MNIST test probes (AUROC {r[key + 'auroc']:.4f}).", ""]


def table_vi_section() -> list[str]:
    name, r = _load(6)
    lines = ["## Table VI — trained on MNIST, probed with Fashion-MNIST", ""]
    if r is None:
        return lines + ["Not run yet.", ""]
    header = ["Thr", "Fashion probes rejected % ours (paper)", "MNIST P_miss ours (paper)", "MNIST Acc % kept"]
    rows = [[t, f"{_pct(r[f'rejected_fashion_thr{t}'])} ({paper.TABLE_VI[t][0]})",
             f"{r[f'pmiss_mnist_thr{t}']:.3f} ({paper.TABLE_VI[t][1]})", _pct(r[f"acc_mnist_thr{t}"])]
            for t in sorted(paper.TABLE_VI)]
    rejected = [f"rejected_fashion_thr{t}" for t in sorted(paper.TABLE_VI)]
    missed = [f"pmiss_mnist_thr{t}" for t in sorted(paper.TABLE_VI)]
    return (lines + _provenance(name, r) + _md_table(header, rows) + [""]
            + ["Rejected Fashion probes (higher is better):"] + _worse(r, rejected)
            + _novelty_note()
            + ["MNIST P_miss (lower is better):"] + _worse(r, missed, higher_is_better=False))


def targets_section() -> list[str]:
    """The project's accuracy and error targets (`_paper.TARGETS`) against the best result we have for each."""
    lines = ["## Targets", "", "| target | ours | source |", "|---|---|---|"]
    candidates = []
    for source in ("mnist_flat.json", "mnist_flat_likelihood_neg_log_weight.json"):
        flat = RESULTS / source
        if flat.exists():
            r = json.loads(flat.read_text())
            candidates.append((f"{source}, {r.get('decision', 'mean')} decision", r["mode"], r["accuracy"]))
    name, r = _load(1)
    if r is not None:
        candidates.append((name, r["mode"], r["acc_latent15_none"]))
    rules = _decision_rules()
    if rules is not None:
        candidates.append(("decision_rules.json, likelihood decision", rules["mode"],
                           rules["mnist__neg_log_weight__likelihood__accuracy"]))
    for source, mode, accuracy in candidates:
        lines.append(f"| MNIST no rejection >= {paper.TARGETS['mnist_no_rejection_acc']} % "
                     f"(goal {paper.TARGETS['mnist_no_rejection_goal']} %) | {_pct(accuracy)} ({mode}) | `{source}` |")
    for table, how in ((3, "from scratch"), ("3_base", "from the base VAE")):
        name, r = _load(table)
        if r is None:
            continue
        for rule, prefix in (("paper's mean rule", ""), ("likelihood decision", "lik_")):
            if not all(f"{prefix}acc_latent{z}_none" in r for z in (15, 20, 25)):
                continue
            z = max((15, 20, 25), key=lambda z: r[f"{prefix}acc_latent{z}_none"])
            lines.append(f"| Fashion-MNIST no rejection >= {paper.TARGETS['fashion_no_rejection_acc']} % "
                         f"(goal {paper.TARGETS['fashion_no_rejection_goal']} %) | {_pct(r[f'{prefix}acc_latent{z}_none'])} "
                         f"({r['mode']}, {how}, latent {z}, {rule}) | `{name}` |")
    chose_among_all = RESULTS / "fashion_variants.json"
    chosen_there = json.loads(chose_among_all.read_text())["selected_variant"] if chose_among_all.is_file() else None
    for variants in sorted(RESULTS.glob("fashion_variants*.json")):
        v = json.loads(variants.read_text())
        if v["mode"] != "full":
            continue
        selection = _pct(v[v["selected_variant"] + "__sel_acc__" + v["selected_rule"]])
        chosen = (f"variant `{v['selected_variant']}` and rule `{v['selected_rule']}` chosen on a "
                  f"{v['n_selection']:,}-image selection split" if variants == chose_among_all else
                  f"variant `{v['selected_variant']}` and rule `{v['selected_rule']}` as chosen by "
                  f"`fashion_variants.json`; selection split {selection}" if v["selected_variant"] == chosen_there else
                  f"variant `{v['selected_variant']}`, rule `{v['selected_rule']}`, run on its own; "
                  f"selection split {selection}")
        seed = f", seed {v['seed']}" if v.get("seed") else ""
        seed += f", K = {v['n_regenerations']}" if v.get("n_regenerations", 300) != 300 else ""
        lines.append(f"| Fashion-MNIST no rejection >= {paper.TARGETS['fashion_no_rejection_acc']} % | "
                     f"{_pct(v['selected_test_accuracy'])} ({v['mode']}, on {v['device']}{seed}, {v['n_fit']:,} training "
                     f"images; {chosen}) | `{variants.name}` |")
    if rules is not None and "fashion_mnist__neg_log_weight__likelihood__accuracy" in rules:
        lines.append(f"| Fashion-MNIST no rejection >= {paper.TARGETS['fashion_no_rejection_acc']} % | "
                     f"{_pct(rules['fashion_mnist__neg_log_weight__likelihood__accuracy'])} ({rules['mode']}, latent 15, "
                     f"likelihood decision) | `decision_rules.json` |")
    lines += _known_rejection_targets()
    name, r = _load(5)
    if r is not None:
        for n, limit in paper.TARGETS["limited_label_error"].items():
            lines.append(f"| error at N = {n} < {limit} % | {_pct(min(_table_v_errors(r, n)))} ({r['mode']}, best of "
                         f"Table V's columns) | `{name}` |")
    return lines + ["", "A target is met only by a full-mode number; quick-mode numbers are smoke checks.", ""]


def _known_rejection_targets() -> list[str]:
    """Known-class rejection against the target Acc >= 99.8 % at P_miss <= 0.03, for every full MNIST rejection run, per
    KL score, with the threshold calibrated plainly and the one held with 95 % confidence (benchmarks/rejection.py)."""
    lines = []
    for path in sorted(RESULTS.glob("rejection*.json")):
        r = json.loads(path.read_text())
        if r.get("mode") != "full":  # rejection_stability*.json match the pattern and record no mode
            continue
        prefix = "mnist_vs_fashion_mnist__"
        for method in sorted({k[len(prefix):].split("__")[0] for k in r if k.startswith(prefix + "regentree_KL")}):
            at = f"{prefix}{method}__known_accuracy_at_p_miss_0.03"
            p_miss = f"{prefix}{method}__known_p_miss_at_p_miss_0.03"
            held = (f"; held with 95 % confidence {_pct(r[at + '_conf95'])} at {r[p_miss + '_conf95']:.4f}"
                    if at + "_conf95" in r else "")  # runs before the confidence option have none
            lines.append(f"| MNIST known-class Acc >= {100 * r['target_known_accuracy']:g} % at P_miss <= {r['max_p_miss']} | "
                         f"{_pct(r[at])} at {r[p_miss]:.4f}{held} (full, {method.replace('_', ' ')}) | `{path.name}` |")
    return lines


def _decision_rules():
    path = RESULTS / "decision_rules.json"
    return json.loads(path.read_text()) if path.exists() else None


def decision_rules_section() -> list[str]:
    """The same trained models ranked by each decision rule (benchmarks/decision_rules.py)."""
    r = _decision_rules()
    if r is None:
        return []
    lines = ["## Decision rules on the same models", "",
             f"`python benchmarks/decision_rules.py` ({r['mode']}, {r['date'][:10]}, {r['cpu_count']} CPU cores): the "
             "full latent-15 models `mnist_flat.py` and `rejection.py` had saved at that time (the MNIST one was later "
             "re-trained by the likelihood run of `mnist_flat.py`), 10,000 test probes, K = 300. *mean* of the "
             "cross-entropy is the paper's rule; *likelihood* ranks by the importance-weighted log-likelihood of the "
             "probe from the same draws (distance `neg_log_weight`). Cells: Acc % / P_miss at the KL threshold.", ""]
    header = ["data", "distance", "decision", "no rejection", *(f"Thr {t:g}" for t in r["thresholds"])]
    rows = []
    for data in ("mnist", "fashion_mnist"):
        for distance, decision in (("cross_entropy", "mean"), ("cross_entropy", "median"),
                                   ("neg_log_weight", "mean"), ("neg_log_weight", "likelihood")):
            key = f"{data}__{distance}__{decision}"
            if f"{key}__accuracy" not in r:
                continue
            rows.append([data, distance, decision, _pct(r[f"{key}__accuracy"]),
                         *(f"{_pct(r[f'{key}__acc_at_thr_{t:g}'])} / {r[f'{key}__p_miss_at_thr_{t:g}']:.3f}"
                           for t in r["thresholds"])])
    return lines + _md_table(header, rows) + [""]


def main() -> None:
    lines = ["# Results: the paper's tables reproduced", "",
             "Generated by `python benchmarks/results_markdown.py` from `benchmarks/results/paper_table_<n>[_quick].json`,",
             "which `python benchmarks/paper_tables.py --table <I..VI> [--quick]` writes. Cells read *ours (paper)*;",
             "accuracies and errors in %, P_miss as a fraction of the test set (as printed in the paper). The paper's",
             "numbers are transcribed in `benchmarks/_paper.py`, with notes on its apparent typos. Figures:",
             "`python benchmarks/paper_figures.py` renders `benchmarks/results/figures/*.png` from the saved results.", "",
             "Full mode (`python benchmarks/paper_tables.py --table all`) trains 6 models of 10 VAEs on the full",
             "60,000-image training sets (paper settings: (500, 500) MLPs, 100 epochs, K = 300, 10,000 probes) plus the",
             "limited-label and self-trained models; quick mode (300 images per class, 8 epochs, 500 probes, K = 50)",
             "is a smoke check of the pipeline whose VAEs are far from converged, so its numbers are far below the",
             "paper's and say nothing about the method.", ""]
    lines += targets_section()
    lines += decision_rules_section()
    lines += threshold_section(1, "I — MNIST, latent 20/15/10, Acc and P_miss by KL threshold", paper.TABLE_I)
    lines += sigma_section(2, "II — MNIST, noise variance sigma^2 (no rejection)", [10, 15, 20], 1)
    lines += threshold_section(3, "III — Fashion-MNIST, latent 25/20/15", paper.TABLE_III)
    lines += threshold_section(
        "3_base", "III from a base VAE — Fashion-MNIST, latent 25/20/15", paper.TABLE_III,
        intro="Not the paper's training: every class VAE starts from one base VAE trained first on all 60,000 "
              "training images (`base_epochs`, labels unused), then trains on its own class with early stopping "
              "as in Table III (`python benchmarks/paper_tables.py --table III-base`). The paper's numbers are "
              "Table III's. The variant was picked on a selection split by `benchmarks/fashion_variants.py` "
              "(`fashion_variants.json`, on a GPU: there the base VAE lifted the likelihood rule's test accuracy "
              "at latent 25 from 87.44 to 89.13 %); this CPU run of the same recipe on all 60,000 images reaches "
              "88.54 % (latent 20), 0.46 pt short of the paper's 89 %. The variant that selection split chose "
              "(base VAE, 150 fixed epochs, latent 25: 89.00 % on the GPU), run again on 2 CPU cores "
              "(`fashion_variants_cpu_l25_base40_fixed150.json`), reaches 88.48 %; the same recipe at latent 20 "
              "(`fashion_variants_cpu_l20_base40_fixed150.json`), higher on the selection split (89.92 vs 89.62 %), "
              "reaches 88.57 %, and 88.86 % and 88.10 % with other initial weights (`--seed 1`, `--seed 2`, "
              "`fashion_variants_cpu_l20_base40_fixed150_seed<n>.json`): 88.51 % on average over three seeds, "
              "0.49 pt short. Every CPU run so far (88.10-88.86 %) lands under the GPU runs (89.00-89.13 %); the "
              "seeds alone spread over 0.76 pt, so single runs on either device say little about a 0.5 pt gap. "
              "Convolutional class VAEs (`conv_l20`: two 4x4 stride-2 convolutions of 32 and 64 channels, a dense "
              "layer of 256, latent 20; `fashion_variants_cpu_conv_l20_k100.json`, K = 100 to fit 2 cores) do not "
              "lift it either: 89.44 % on the selection split, 88.65 % on the test set (the MLP recipe, same seed: 88.57 %). "
              "The two pooled per class (`ensemble_l20_conv_l20`, a `RegenEnsemble`: each class's distance distribution "
              "is the equal-weight mixture of its MLP and conv VAE; `fashion_variants_cpu_ensemble_l20_conv_l20_k100.json`, "
              "one seed, K = 100 each) reach 90.00 % on the selection split and 89.22 % on the test set: the first CPU "
              "run over 89 %, by 0.22 pt, within the 0.76 pt the MLP recipe spread over seeds.")
    lines += sigma_section(4, "IV — Fashion-MNIST, noise variance sigma^2 (no rejection)", [15, 20, 25], 3,
                           note="The paper's Table IV header repeats Table II's (dim_z 10/15/20); by Table III's "
                                "no-rejection accuracies its columns are most likely dim_z 25/20/15 and are compared so.")
    lines += table_v_section()
    lines += table_vi_section()
    lines += tree_section()
    lines += large_label_sets_section()
    lines += tabular_section()
    DOC.write_text("\n".join(lines).rstrip() + "\n")
    print("wrote", DOC)


if __name__ == "__main__":
    main()
