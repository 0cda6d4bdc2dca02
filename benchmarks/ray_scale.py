"""Ray engine vs the local engine on an LLM-bound recipe, against a fixed-delay OpenAI stub.

Measures (1) rows/s of one ``respond`` stage on the local engine and on Ray with 2 workers at the
same job-wide concurrency, their ratio and Ray's per-row overhead; (2) a simulated scale-out: K
Ray workers with a job-wide concurrency of ``per_worker * K`` against the stub, for K = 1, 2, 4.

    PYTHONPATH=src:. python benchmarks/ray_scale.py --rows 96 --delay 0.1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ray
from tests.servers import StubOpenAIServer

from tunesmith.recipes import load_recipe, run_recipe

RECIPE = """\
data: data.json
batch_size: {batch}
llm:
  backend: openai
  model: stub-model
  use_cache: false
  options: {{base_url: "{url}/v1", concurrency: {conc}}}
stages:
  - respond: {{max_tokens: 16}}
"""


def one_run(url: str, rows: int, conc: int, engine: str | None) -> float:
    """Seconds for one recipe run of ``rows`` rows (a fresh folder, no cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = [{"instruction": f"Write one line about item {i}.", "input": "", "output": ""}
                for i in range(rows)]  # fmt: skip
        (folder / "data.json").write_text(json.dumps(data), encoding="utf-8")
        recipe = folder / "recipe.yaml"
        recipe.write_text(RECIPE.format(batch=conc, url=url, conc=conc), encoding="utf-8")
        start = time.perf_counter()
        run_recipe(load_recipe(recipe), out=folder / "run", report=False, engine=engine)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--scale", default="1,2,4")
    args = parser.parse_args()
    n, conc = args.rows, args.concurrency
    with StubOpenAIServer(delay=args.delay) as stub:
        local = one_run(stub.url, n, conc, None)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        one_run(stub.url, 8, conc, "ray")  # warm the cluster (actor start, imports)
        on_ray = one_run(stub.url, n, conc, "ray")
        ray.shutdown()
        ideal = n * args.delay / conc
        print(f"rows={n} delay={args.delay}s concurrency={conc} (ideal {ideal:.2f}s)")
        print(f"local: {n / local:.1f} rows/s  ray(2 workers): {n / on_ray:.1f} rows/s  "
              f"ratio {local / on_ray:.2f}  overhead {(on_ray - local) / n * 1000:.1f} ms/row")  # fmt: skip
        for k in (int(x) for x in args.scale.split(",")):
            ray.init(num_cpus=k, include_dashboard=False, log_to_driver=False)
            one_run(stub.url, 8, conc * k, "ray")
            secs = one_run(stub.url, n * k, conc * k, "ray")
            ray.shutdown()
            print(f"scale K={k}: concurrency {conc * k}, {n * k} rows, {n * k / secs:.1f} rows/s "
                  f"(ideal {conc * k / args.delay:.0f}), stub peak {stub.max_in_flight}")  # fmt: skip


if __name__ == "__main__":
    main()
