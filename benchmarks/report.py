"""The GPU check's report: Markdown tables (columns documented in gpu_check.py) and JSON."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _num(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _train(rows: list[dict]) -> list[str]:
    by_id = {r["id"]: r for r in rows}
    out = [
        "| model | network | batch | precision | channels_last + compile | medsr it/s | baseline it/s "
        "| medsr / baseline | medsr peak GiB | baseline peak GiB | first step s | note |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if r["kind"] == "baseline":
            continue
        base = by_id.get(f"train/{r['model']}/{r['precision']}/baseline", {})
        ok, base_ok = r.get("status") == "ok", base.get("status") == "ok"
        ratio = r["it_s"] / base["it_s"] if ok and base_ok and base.get("it_s") else math.nan
        notes = [f"{r['status']}: {r.get('note', '')}"] if not ok else []
        if r["kind"] == "eager" and not base_ok and base:
            notes.append(f"baseline {base.get('status')}: {base.get('note', '')}")
        out.append(
            f"| {r['model']} | {r.get('network') or base.get('network', '')} | {r.get('batch') or base.get('batch', '')} "
            f"| {r['precision']} | {'on' if r['kind'] == 'compiled' else 'off'} | {_num(r.get('it_s'))} "
            f"| {_num(base.get('it_s')) if base_ok else '-'} | {_num(ratio)} | {_num(r.get('peak_gib'))} "
            f"| {_num(base.get('peak_gib')) if base_ok and r['kind'] == 'eager' else '-'} | {_num(r.get('first_s'), 1)} "
            f"| {'; '.join(notes)} |"
        )
    return out


def _imresize(rows: list[dict]) -> list[str]:
    out = [
        "| case | max abs diff CUDA vs CPU | 8-bit levels differing | imresize ms | F.interpolate ms "
        "| imresize / F.interpolate | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if r.get("status") != "ok":
            out.append(f"| 1/{r['inverse_scale']} | | | | | | {r['status']}: {r.get('note', '')} |")
            continue
        out.append(
            f"| {r['case']} | {r['max_abs_diff']:.2e} | {r['levels_differ']:.2e} | {_num(r['imresize_ms'], 3)} "
            f"| {_num(r['interp_ms'], 3)} | {_num(r['ratio'])} | |"
        )
    return out


def _predict(rows: list[dict]) -> list[str]:
    out = [
        "| model | LR input | mode | tile used | seconds | output MP/s | GPU peak GiB | host peak growth MiB | note |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        mode = f"tile={r['tile']}" if r["tile"] else "untiled"
        if r.get("status") != "ok":
            out.append(
                f"| {r['model']} | | {mode} | | | | | | {r['status']}: {r.get('note', '')} |"
            )
            continue
        used = r["tile_used"] or "whole image"
        out.append(
            f"| {r['model']} | {r['lr'][0]}x{r['lr'][1]} | {mode} | {used} | {_num(r['seconds'])} | {_num(r['mp_s'], 1)} "
            f"| {_num(r['gpu_peak_gib'])} | {_num(r['host_growth_mib'], 0)} | {r['amp']} |"
        )
    return out


def markdown(result: dict) -> str:
    env, settings = result["environment"], result["settings"]
    where = env.get("gpu") or f"CPU ({env['cpus']} cores)"
    lines = [
        f"# medsr GPU check{' (dry run: tiny sizes on the CPU, code paths only)' if settings['dry_run'] else ''}",
        "",
        f"{where}, torch {env['torch']}{', CUDA ' + env['cuda'] if env.get('cuda') else ''}, medsr {env['commit']}; "
        f"{result.get('seconds', 0):.0f} s of the {settings['budget_s']:.0f} s budget; training: "
        f"{settings['steps']} timed steps after {settings['warmup']}.",
    ]
    if settings["models_unavailable"]:
        lines.append(
            f"Not measured (architecture or config not in this checkout): {', '.join(settings['models_unavailable'])}."
        )
    titles = {
        "train": ("Training iterations/s: medsr vs a plain PyTorch loop", _train),
        "imresize": ("MATLAB imresize on the GPU", _imresize),
        "predict": ("Tiled prediction, x4", _predict),
    }
    for part, data in result["parts"].items():
        lines += [
            "",
            f"## {titles[part][0] if part in titles else 'GPU tests'} ({data['seconds']:.0f} s, box {data['box_s']:.0f} s)",
            "",
        ]
        if part == "pytest":
            r = data["rows"][0]
            lines.append(
                f"`pytest -m gpu`: {r.get('result') or r['status'] + ': ' + r.get('note', '')}"
            )
            lines += [f"- {f}" for f in r.get("failures", [])]
        else:
            lines += titles[part][1](data["rows"])
    return "\n".join(lines) + "\n"


def _strict(value):
    """NaN (not measured) as null: the file stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def write(result: dict, out: Path) -> None:
    """``gpu_check.json`` and ``gpu_check.md`` in ``out`` (each written whole, then renamed)."""
    data = json.dumps(_strict(result), indent=1, default=str, allow_nan=False)
    for name, text in (("gpu_check.json", data), ("gpu_check.md", markdown(result))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)
