"""What ``minikd bench`` prints, and the CPU speed targets it judges its figures by.

``check_targets`` compares the default training path's figures (the fused
step where it applies) with fixed limits: each epoch within 1.3x its
matrix-product floor, a distilled epoch within 1.15x a student's, PyTorch at
least 1.5x (teacher) and 1x (student) our time, and ``reproduce``'s peak memory
under 1 GiB. ``print_report`` shows every figure of bench.json as tables.
"""
from __future__ import annotations

from .report import table_lines

STEPS = ("fused", "reference", "flat")


def check_targets(res):
    """The CPU speed targets for the default training path (the fused step
    where it applies), each as {"value", "limit", "met"}; absent when not
    measured, and none at all on CuPy (they are CPU targets)."""
    if res["config"]["backend"] != "numpy":
        return {}
    def step_of(model):
        steps = res["models"].get(model, {}).get("steps", {})
        for name in STEPS:
            if steps.get(name, {}).get("available"):
                return name, steps[name]
        return None, None

    out = {}
    for model in ("teacher", "student"):
        name, s = step_of(model)
        if s is not None:
            out[f"{model}_epoch_over_floor"] = {"step": name, "value": s["ratio_to_floor"], "limit": 1.3,
                                                "met": s["ratio_to_floor"] <= 1.3}
    name, _ = step_of("student")
    if name is not None and name in res["distilled_over_student"]:
        v = res["distilled_over_student"][name]
        out["distilled_over_student"] = {"step": name, "value": v, "limit": 1.15, "met": v <= 1.15,
                                         "from": "paired"}
    t = res.get("torch") or {}
    for model, need in (("teacher", 1.5), ("student", 1.0)):
        name, s = step_of(model)
        if t.get("available") and s is not None and model in t["models"]:
            paired = t["models"][model].get("paired")
            if paired is not None and paired["ours_step"] == name:  # alternating epochs: drift cancels
                v, how = paired["torch_over_ours"], "paired"
            else:
                v, how = t["models"][model]["sec_per_epoch"] / s["sec_per_epoch"], "medians"
            out[f"torch_over_ours_{model}"] = {"step": name, "value": v, "limit": need, "met": v >= need,
                                               "from": how}
    rep = res.get("reproduce_memory") or {}
    if rep.get("peak_rss_mib") is not None and rep.get("returncode") == 0 and rep.get("train_size") is None:
        v = rep["peak_rss_mib"]
        out["reproduce_peak_rss_mib"] = {"value": v, "limit": 1024, "met": v <= 1024}
    return out


# --------------------------------------------------------------------------- report
def print_report(res):
    cfg = res["config"]
    env = res["environment"]
    load = env.get("loadavg_at_start")
    print(f"\nminikd bench: {cfg['dataset']}, {cfg['n_train']} training images, batch {cfg['batch_size']}, "
          f"{cfg['backend']} backend, median of {cfg['reps']} (after {cfg['warmup']} warm-up epoch(s))")
    if load is not None:
        print(f"{env['cpu_count']} CPUs, load average {load:.2f} at the start, {env['loadavg_at_end']:.2f} at the end "
              f"(other work on the machine slows every figure)")
    rows = [("model", "step", "s/epoch", "images/s", "floor s", "floor GFLOP/s", "x floor", "floor BLAS")]
    for model, m in res["models"].items():
        for step, s in m["steps"].items():
            if not s["available"]:
                rows.append((model, step, "-", "-", "-", "-", "-", s["note"]))
                continue
            rows.append((model, step, f"{s['sec_per_epoch']:.3f}", f"{s['images_per_sec']:.0f}",
                         f"{s['floor_sec']:.3f}", f"{s['floor_gflops']:.0f}", f"{s['ratio_to_floor']:.2f}",
                         s["blas_name"]))
    print("\n".join(table_lines(rows, align="<<>>>>><")))
    ops = [f"{model} {s['device_ops_per_step']:.1f}" for model, m in res["models"].items()
           for step, s in m["steps"].items() if s.get("device_ops_per_step") is not None]
    if ops:
        print("kernel launches per step, as the CuPy stand-in counts them (tests/cupy_standin.py's rule): "
              + ", ".join(ops))
    if res["distilled_over_student"]:
        print("distilled / student epoch, paired (alternating epochs, median of per-pair ratios): "
              + ", ".join(f"{k} {v:.2f}" for k, v in res["distilled_over_student"].items())
              + "; from the medians above: "
              + ", ".join(f"{k} {v:.2f}" for k, v in res["distilled_over_student_unpaired"].items()))
    if res.get("soft_targets_sec") is not None:
        print(f"teacher soft targets (computed once, not part of an epoch): {res['soft_targets_sec']:.3f} s")

    t = res.get("torch")
    if t is not None:
        if not t["available"]:
            print(f"\nPyTorch: skipped -- {t['reason']}")
        else:
            print(f"\nPyTorch {t['version']} ({t['device']}, {t['threads']} threads), same nets and recipe")
            steps = [s for s in STEPS if any(s in r for r in res["ours_over_torch"].values())]
            rows = [("model", "torch s/epoch", "torch floor s", "torch x floor")
                    + tuple(f"{s}/torch" for s in steps) + ("torch/ours, paired",)]
            for model, tm in t["models"].items():
                ratios = res["ours_over_torch"].get(model, {})
                paired = tm.get("paired")
                rows.append((model, f"{tm['sec_per_epoch']:.3f}", f"{tm['floor_sec']:.3f}",
                             f"{tm['ratio_to_floor']:.2f}") + tuple(
                    f"{ratios[s]:.2f}" if s in ratios else "-" for s in steps)
                    + (f"{paired['torch_over_ours']:.2f} ({paired['ours_step']})" if paired else "-",))
            print("\n".join(table_lines(rows, align="<" + ">" * (len(rows[0]) - 1))))
            print("(ours/torch < 1: minikd is faster; paired: our epochs alternating with PyTorch's, "
                  "median of torch/ours per pair, > 1: minikd is faster)")

    for step, prof in (res.get("breakdown") or {}).items():
        if "error" in prof:
            print(f"\nbreakdown ({step} step): {prof['error']}")
            continue
        print(f"\nwhere one teacher epoch goes ({step} step, {prof['epoch_sec']:.3f} s with timers on)")
        rows = [("component", "seconds", "% epoch", "measured")]
        for r in prof["rows"]:
            rows.append((r["component"], f"{r['sec']:.3f}", f"{r['percent']:.1f}", r["how"]))
        if prof.get("floor_sec") is not None:
            rows.append(("(floor: products alone)", f"{prof['floor_sec']:.3f}",
                         f"{100 * prof['floor_sec'] / prof['epoch_sec']:.1f}", "same BLAS, timed above"))
        print("\n".join(table_lines(rows, align="<>><")))
        if prof.get("max_norm_measured"):
            m = prof["max_norm_measured"]
            print(f"max-norm measured the column lengths in {m['exact']} of {m['steps']} layer-steps; "
                  f"in the others a bound proved no column too long (minikd.fast.NormBound)")

    targets = res.get("targets") or {}
    if targets:
        print("\ntargets (CPU, default training path):")
        for key, t in targets.items():
            op = ">=" if key.startswith("torch_over_ours") else "<="
            step = f" [{t['step']} step{', ' + t['from'] if 'from' in t else ''}]" if "step" in t else ""
            print(f"  {key:28s} {t['value']:8.2f} {op} {t['limit']:<6g} {'met' if t['met'] else 'NOT met'}{step}")

    mem = res["memory"]
    per = []
    for model, m in res["models"].items():
        for step, s in m["steps"].items():
            if s.get("available") and "allocated_peak_mib" in s["memory"]:
                per.append(f"{model}/{step} {s['memory']['allocated_peak_mib']:.0f}")
            elif s.get("available") and "device_pool_mib" in s["memory"]:
                per.append(f"{model}/{step} {s['memory']['device_pool_mib']:.0f} (CuPy pool)")
    print(f"\nmemory: this process's peak RSS {mem['peak_rss_mib']:.0f} MiB"
          + (f"; allocated per model in its first epoch, MiB: {', '.join(per)}" if per else ""))
    rep = res.get("reproduce_memory")
    if rep is not None:
        status = "" if rep["returncode"] == 0 else f" (exit {rep['returncode']}: {rep.get('error', '')})"
        peak = "unknown" if rep["peak_rss_mib"] is None else f"{rep['peak_rss_mib']:.0f} MiB"
        print(f"peak RSS of `{rep['command']}`: {peak}{status}")
    if res.get("json_path"):
        print(f"every figure: {res['json_path']}")
