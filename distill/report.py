"""The students' quality table: teacher (its tuned sampler) beside the guidance-distilled model and each
few-step student, on the same test pairs, with paired differences, targets, denoiser calls and torch-eager
time per image as a ratio to the teacher measured in the same run, and a sample grid (one column per row).
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from igr.report import check_comparable, fd_compare, paired, row

# SSIM drop allowed below the teacher, by student step count; FD_garm at most FD_SLACK worse than the teacher's
SSIM_BOUNDS = {4: 0.005, 2: 0.01, 1: 0.03}
FD_SLACK = 0.10
# a light VAE (row NAME-light beside row NAME, the same student with the full VAE): masked SSIM at most this much
# lower, FD_garm at most LIGHT_FD_SLACK worse
LIGHT_SSIM_MASK_BOUND = 0.01
LIGHT_FD_SLACK = 0.10
LIGHT_SUFFIX = "-light"


def light_targets(full: dict, light: dict) -> dict[str, Any]:
    """A light row against its full-VAE row: paired masked-SSIM drop and FD_garm change, and the bounds."""
    drop = -paired(light, full, "ssim_mask")["mean"]
    fd = light["metrics"]["fd"]["mean"] / full["metrics"]["fd"]["mean"] - 1
    return {"ssim_mask_drop": drop, "ssim_mask_bound": LIGHT_SSIM_MASK_BOUND,
            "ssim_mask_met": drop <= LIGHT_SSIM_MASK_BOUND, "fd_increase": fd, "fd_bound": LIGHT_FD_SLACK,
            "fd_met": fd <= LIGHT_FD_SLACK, "ssim_drop": -paired(light, full, "ssim")["mean"],
            "fd": fd_compare(light, full)}


def denoiser_calls(sampling: dict) -> int:
    """Denoiser evaluations per image: steps, doubled under classifier-free guidance."""
    return sampling["steps"] * (2 if sampling["guidance"] != 1.0 else 1)


def _load_eval(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run python -m igr.eval for it first")
    rep = json.loads(path.read_text())
    rep["_path"] = str(path)
    return rep


def targets(teacher: dict, student: dict, steps: int | None) -> dict[str, Any]:
    """The issue's bounds for a k-step student: SSIM drop (whole image, and inside the true garment mask, which a
    blank image cannot win) and relative FD_garm increase versus the teacher."""
    t, s = teacher["metrics"], student["metrics"]
    drop = t["ssim"]["mean"] - s["ssim"]["mean"]
    fd_ratio = s["fd"]["mean"] / t["fd"]["mean"] - 1
    out: dict[str, Any] = {"ssim_drop": drop, "fd_increase": fd_ratio}
    if "ssim_mask" in t and "ssim_mask" in s:
        out["ssim_mask_drop"] = t["ssim_mask"]["mean"] - s["ssim_mask"]["mean"]
    if steps in SSIM_BOUNDS:
        out.update(ssim_bound=SSIM_BOUNDS[steps], ssim_met=drop <= SSIM_BOUNDS[steps],
                   fd_bound=FD_SLACK, fd_met=fd_ratio <= FD_SLACK)
        if "ssim_mask_drop" in out:
            out["ssim_mask_met"] = out["ssim_mask_drop"] <= SSIM_BOUNDS[steps]
    return out


def check_models(reports: dict[str, dict], folders: dict[str, str | Path]) -> None:
    """Each evaluation must be of its row's model folder: a report that mixed another teacher's evaluations in
    would compare the wrong models under the right names."""
    wrong = [f"{name}: {reports[name]['_path']} evaluated {reports[name].get('model')}, not {folder}"
             for name, folder in folders.items()
             if Path(str(reports[name].get("model", ""))).resolve() != Path(folder).resolve()]
    if wrong:
        raise ValueError("evaluations of other models (pass --evals with this teacher's folder): " + "; ".join(wrong))


@torch.no_grad()
def time_models(models: dict[str, Any], *, images: int, runs: int, seed: int = 0) -> dict[str, dict]:
    """Median seconds per image (batch 1, torch eager) of each model's own sampler on the same test persons,
    interleaved run by run so that machine noise falls on every model alike; ratios to the first model."""
    from igr.eval import split_batches
    from igr.pipeline import sample_items

    first = next(iter(models.values())).config
    person, _, _ = next(split_batches("test", images, (first.height, first.width), images))
    times: dict[str, list[float]] = {name: [] for name in models}
    for run in range(runs + 1):                           # run 0 warms up
        for name, model in models.items():
            t0 = time.perf_counter()
            for i in range(images):
                sample_items(model, person[i:i + 1], i, seed=seed)
            if run:
                times[name].append((time.perf_counter() - t0) / images)
    base = statistics.median(times[next(iter(models))])
    return {name: {"seconds_per_image": statistics.median(t), "ratio_to_teacher": statistics.median(t) / base,
                   "speedup": base / statistics.median(t)} for name, t in times.items()}


@torch.no_grad()
def sample_grid(models: dict[str, Any], out: Path, n: int = 6, seed: int = 0) -> Path:
    """person | ground truth | one column per model, the first `n` test pairs, each from its eval noise."""
    from igr.eval import split_batches
    from igr.images import contact_sheet, save_png, to_uint8
    from igr.pipeline import sample_items

    cfg = next(iter(models.values())).config
    person, garment, _ = next(split_batches("test", n, (cfg.height, cfg.width), n))
    cols = [to_uint8(person), to_uint8(garment)]
    cols += [to_uint8(sample_items(m, person, 0, seed=seed)) for m in models.values()]
    title = "test split: person | ground truth | " + " | ".join(models)
    return save_png(contact_sheet(list(zip(*cols)), title=title), out)


def build(teacher_dir: str | Path, rows: dict[str, str | Path], *, evals: Path, timing_images: int = 8,
          timing_runs: int = 3, grid_n: int = 6) -> dict[str, Any]:
    """The report dict (see `write`); `rows`: name -> model folder, evaluated as EVALS/<name>.json."""
    from igr.model import IGRModel

    teacher_eval = _load_eval(evals / "teacher.json")
    reports = {"teacher": teacher_eval, **{name: _load_eval(evals / f"{name}.json") for name in rows}}
    check_comparable(reports)
    check_models(reports, {"teacher": teacher_dir, **rows})
    models = {"teacher": IGRModel.from_pretrained(teacher_dir)}
    models.update({name: IGRModel.from_pretrained(folder) for name, folder in rows.items()})
    table = {}
    for name, rep in reports.items():
        entry = row(rep)
        folder = Path(teacher_dir if name == "teacher" else rows[name])
        meta = json.loads((folder / "distill.json").read_text()) if (folder / "distill.json").is_file() else {}
        entry.update(model=str(folder), kind=meta.get("kind", "teacher"), method=meta.get("method"),
                     denoiser_calls=denoiser_calls(rep["sampling"]))
        if name != "teacher":
            steps = meta.get("steps") if meta.get("kind") == "steps" else None
            entry["vs_teacher"] = {"ssim": paired(rep, teacher_eval), "ssim_mask": paired(rep, teacher_eval, "ssim_mask"),
                                   "fd": fd_compare(rep, teacher_eval)}
            entry["targets"] = targets(teacher_eval, rep, steps)
            entry["distill"] = {k: meta.get(k) for k in ("hours", "first_loss", "final_loss_mean50", "config")}
        table[name] = entry
    for name, rep in reports.items():                     # a light row beside the same student's full-VAE row
        full = name[:-len(LIGHT_SUFFIX)] if name.endswith(LIGHT_SUFFIX) else None
        if full in reports and models[name].config.light and not models[full].config.light:
            table[name]["vs_full_vae"] = light_targets(reports[full], rep)
    from benchmarks.measure import flops_per_restore

    for name in table:
        table[name]["gflop"] = flops_per_restore(Path(table[name]["model"]))["restore"] / 1e9
        table[name]["light"] = bool(models[name].config.light)
    timing = time_models(models, images=timing_images, runs=timing_runs)
    for name, t in timing.items():
        table[name]["timing"] = t
    rep = {"split": teacher_eval["split"], "n": teacher_eval["n"], "features": teacher_eval["features"],
           "rows": table, "references": teacher_eval.get("references", {}),
           "timing": {"images": timing_images, "runs": timing_runs, "batch": 1, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()},
           "_models": models, "_grid_n": grid_n}
    return rep


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(rep: dict[str, Any]) -> str:
    def ci(r: dict, k: str, f: str = ".4f") -> str:
        lo, hi = r[f"{k}_ci95"]
        return f"{r[k]:{f}} [{lo:{f}}, {hi:{f}}]"

    t = rep["timing"]
    lines = [
        "# Students: quality against the teacher",
        "",
        f"Test split of SynthGarment, the same n = {rep['n']} pairs and per-item noise for every row "
        "(`python -m igr.eval`). FD_garm and KID in the embedding space of IGR's own garment encoder. "
        "Intervals: 95% bootstrap over test pairs; differences to the teacher are paired. Time: torch eager, "
        f"batch 1, median over {t['runs']} interleaved runs of {t['images']} images, {t['threads']} threads "
        f"(torch {t['torch']}), measured in one process; the ratio is to the teacher of the same run.",
        "",
        "| row | sampler | denoiser calls / image | SSIM mask [95% CI] | mask IoU | ΔE76 mask | FD_garm [95% CI] | "
        "SSIM | PSNR | KID | GFLOP / restore | s / image | time vs teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def opt(r: dict, k: str, f: str) -> str:
        return "–" if r.get(k) is None else f"{r[k]:{f}}"

    for name, r in rep["rows"].items():
        s = r["sampling"]
        lines.append(f"| {name} | {s['sampler']} {s['steps']}, guidance {s['guidance']:g} | {r['denoiser_calls']} | "
                     f"{ci(r, 'ssim_mask')} | {opt(r, 'mask_iou', '.3f')} | {opt(r, 'delta_e', '.1f')} | "
                     f"{ci(r, 'fd', '.3f')} | {r['ssim']:.4f} | {r['psnr']:.2f} | "
                     f"{r['kid']:.4f} | {opt(r, 'gflop', '.2f')} | {r['timing']['seconds_per_image']:.3f} | "
                     + ("1 (itself) |" if name == "teacher" else
                        f"{r['timing']['ratio_to_teacher']:.3f} ({r['timing']['speedup']:.1f}× faster) |"))
    refs = rep.get("references") or {}
    lines += [f"| yardstick: {k.replace('_', ' ')} | – | – | {v['ssim_mask']:.4f} | {opt(v, 'mask_iou', '.3f')} | "
              f"{opt(v, 'delta_e', '.1f')} | – | {v['ssim']:.4f} | {v['psnr']:.2f} | – | – | – | – |"
              for k, v in refs.items()]
    lines += ["", "## Against the teacher and the targets", "",
              "Targets (issue): SSIM at most 0.005 (4 steps), 0.01 (2 steps), 0.03 (1 step) below the teacher, "
              "read on the whole image and inside the true garment mask, "
              f"FD_garm at most {FD_SLACK:.0%} worse. A negative drop means the student scores higher.", "",
              "| row | SSIM − teacher, paired [95% CI] | SSIM mask − teacher [95% CI] | FD_garm − teacher, paired "
              "[95% CI] | SSIM target | SSIM mask target | FD target |", "|---|---|---|---|---|---|---|"]
    for name, r in rep["rows"].items():
        if name == "teacher":
            continue
        v, tg = r["vs_teacher"], r["targets"]
        fd = v["fd"]
        fd_text = (f"{fd['diff']['mean']:+.3f} [{fd['diff']['ci95'][0]:+.3f}, {fd['diff']['ci95'][1]:+.3f}]"
                   if "diff" in fd else f"{fd['a'] - fd['b']:+.3f} (unpaired)")
        if "ssim_bound" in tg:
            ssim_t = (f"{'met' if tg['ssim_met'] else '**missed**'} (drop {tg['ssim_drop']:+.4f}, "
                      f"bound {tg['ssim_bound']})")
            fd_t = f"{'met' if tg['fd_met'] else '**missed**'} ({tg['fd_increase']:+.1%}, bound +{tg['fd_bound']:.0%})"
        else:
            ssim_t = f"– (drop {tg['ssim_drop']:+.4f})"
            fd_t = f"– ({tg['fd_increase']:+.1%})"
        if "ssim_mask_met" in tg:
            mask_t = (f"{'met' if tg['ssim_mask_met'] else '**missed**'} (drop {tg['ssim_mask_drop']:+.4f}, "
                      f"bound {tg['ssim_bound']})")
        else:
            mask_t = f"– (drop {tg['ssim_mask_drop']:+.4f})" if "ssim_mask_drop" in tg else "–"
        lines.append(f"| {name} | {v['ssim']['mean']:+.4f} [{v['ssim']['ci95'][0]:+.4f}, {v['ssim']['ci95'][1]:+.4f}] | "
                     f"{v['ssim_mask']['mean']:+.4f} [{v['ssim_mask']['ci95'][0]:+.4f}, "
                     f"{v['ssim_mask']['ci95'][1]:+.4f}] | {fd_text} | {ssim_t} | {mask_t} | {fd_t} |")
    light = {name: r for name, r in rep["rows"].items() if "vs_full_vae" in r}
    if light:
        lines += ["", "## Light VAE against the full VAE", "",
                  f"Each NAME{LIGHT_SUFFIX} row is row NAME with the light encoder and decoder (`python -m distill "
                  f"light-attach`). Targets (issue): masked SSIM at most {LIGHT_SSIM_MASK_BOUND} lower, FD_garm at "
                  f"most {LIGHT_FD_SLACK:.0%} worse, paired on the same test pairs. Time: the same run as above.", "",
                  "| row | SSIM mask − full [95% CI] | SSIM − full | FD_garm − full, paired [95% CI] | SSIM mask target | "
                  "FD target | GFLOP full → light | time light / full |", "|---|---|---|---|---|---|---|---|"]
        for name, r in light.items():
            full = rep["rows"][name[:-len(LIGHT_SUFFIX)]]
            v, fd = r["vs_full_vae"], r["vs_full_vae"]["fd"]
            fd_text = (f"{fd['diff']['mean']:+.3f} [{fd['diff']['ci95'][0]:+.3f}, {fd['diff']['ci95'][1]:+.3f}]"
                       if "diff" in fd else f"{fd['a'] - fd['b']:+.3f} (unpaired)")
            lines.append(f"| {name} | {-v['ssim_mask_drop']:+.4f} | {-v['ssim_drop']:+.4f} | {fd_text} | "
                         f"{_met(v['ssim_mask_met'])} (drop {v['ssim_mask_drop']:+.4f}) | "
                         f"{_met(v['fd_met'])} ({v['fd_increase']:+.1%}) | {full['gflop']:.2f} → {r['gflop']:.2f} | "
                         f"{r['timing']['seconds_per_image'] / full['timing']['seconds_per_image']:.3f} |")
    lines += ["", "## How each student was made", "", "| row | kind | method | optimizer steps | hours (this CPU) | "
              "loss first → last 50 |", "|---|---|---|---|---|---|"]
    for name, r in rep["rows"].items():
        d = r.get("distill")
        if not d or not d.get("config"):
            continue
        lines.append(f"| {name} | {r['kind']} | {r['method'] or '–'} | {d['config']['steps']} | {d['hours']:.2f} | "
                     f"{d['first_loss']:.4f} → {d['final_loss_mean50']:.4f} |")
    lines += ["", "## Figures", ""]
    lines += [f"![{k}]({Path(p).name})" for k, p in rep.get("figures", {}).items()]
    lines += ["", "Made by: `" + rep.get("command", "python -m distill report") + "`", ""]
    return "\n".join(lines)


def write(rep: dict[str, Any], out: Path, *, command: str = "python -m distill report") -> list[Path]:
    """OUT.json, OUT.md and OUT-grid.png."""
    out.parent.mkdir(parents=True, exist_ok=True)
    models = rep.pop("_models")
    grid = sample_grid(models, out.with_name(f"{out.name}-grid.png"), n=rep.pop("_grid_n"))
    rep["figures"] = {"sample grid": str(grid)}
    rep["command"] = command
    paths = [out.with_suffix(".json"), out.with_suffix(".md"), grid]
    clean = json.loads(json.dumps(rep, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    paths[0].write_text(json.dumps(clean, indent=1) + "\n")
    paths[1].write_text(markdown(clean))
    return paths


__all__ = ["FD_SLACK", "LIGHT_FD_SLACK", "LIGHT_SSIM_MASK_BOUND", "SSIM_BOUNDS", "build", "check_models",
           "denoiser_calls", "light_targets", "markdown", "targets", "time_models", "write"]
