// `make bench` lives in scripts/bench/: run.mjs runs one module per section. This forwards to it.
await import('./bench/run.mjs')
