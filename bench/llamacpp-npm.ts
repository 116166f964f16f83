#!/usr/bin/env node
/**
 * A stand-in for llama.cpp's `llama-bench` that drives the prebuilt llama.cpp of the npm package `node-llama-cpp`
 * (issue 18: llama.cpp cannot be built on this machine, its source is over the fetch limit; the npm package ships
 * prebuilt CPU binaries). NOT a dependency of this repository: install it outside, e.g.
 *
 *   mkdir -p /tmp/llnpm && cd /tmp/llnpm && npm init -y && npm install node-llama-cpp@3.22.1
 *
 * and pass the folder: `node dist/bench/llamacpp-npm.js --npm /tmp/llnpm -m FILE.gguf -p 512 -n 128 -t 2 -r 3 -o json`
 * (or `--llama-npm /tmp/llnpm` to bench/wasm-matrix.bench.ts and bench/wasm-context.bench.ts, which then run this in
 * place of a llama-bench binary).
 *
 * It times what llama-bench times:
 * - pp P: one batch of P random tokens (logits of the last one) into a cleared sequence, after D untimed depth tokens;
 * - tg N: N single-token decodes (logits of each), after D untimed depth tokens;
 * one untimed warm-up run of each test, then -r repetitions, the sequence cleared before each (as llama-bench clears
 * its memory). Batch 512 (llama-bench's n_ubatch; node-llama-cpp sets n_batch = n_ubatch), -t threads for decode and
 * batch. `--api raw` (default): the addon's own llama_batch + llama_decode (node-llama-cpp's internal `context._ctx`;
 * each decode runs on libuv's thread pool, a few µs), nothing else — what llama-bench times. `--api sequence`: the
 * public `LlamaContextSequence.controlledEvaluate`, a greedy token sampled each step (2026-12-07, mamba-130m Q8_0,
 * 1 thread: the same CPU per token as raw, 9.8 vs 8.9 ms). At 2 threads this stand-in's decode ran 0.47–0.77× of
 * llama-bench's on the same libraries (BENCHMARKS.md, "llama.cpp through npm"): for the 2-thread ratios use
 * scripts/llamacpp-npm-bench.sh (llama.cpp's own llama-bench on node-llama-cpp's libraries) instead.
 * llama.cpp's default thread pool either way (no --poll/--cpu-mask options). Rows are llama-bench's JSON (`avg_ts`: mean of the repetitions, as llama-bench) plus
 * `median_ts`; `build_commit` names the package, its llama.cpp release and the CPU variant ggml loaded.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchRow, benchTests, NODE_LLAMA_CPP_INSTALL, nodeLlamaCppEntry, parseLlamaBenchArgs, testName, type BenchTest } from './llamacpp-npm-lib.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- node-llama-cpp is not a dependency: its types are not available here */

/** a random token id in [1, vocab), as llama-bench's std::rand() % n_vocab (LCG, seeded: the same tokens each run) */
function tokenStream(vocab: number, seed = 12345): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 1 + (s % (vocab - 1));
  };
}

async function main(): Promise<void> {
  const o = parseLlamaBenchArgs(process.argv.slice(2));
  const npmDir = o.npmDir ?? process.env.MAMBA_TS_LLAMA_NPM;
  if (!npmDir) throw new Error(`llamacpp-npm: --npm DIR (or MAMBA_TS_LLAMA_NPM) is required: the folder node-llama-cpp is installed in (${NODE_LLAMA_CPP_INSTALL})`);
  const { entry, version } = nodeLlamaCppEntry(npmDir, NODE_LLAMA_CPP_INSTALL);
  const nlc: any = await import(pathToFileURL(entry).href);
  // CPU only, the prebuilt binaries only (never a source build), no cap on threads (ours are set per context)
  const llama: any = await nlc.getLlama({ gpu: false, build: 'never', maxThreads: 0, logLevel: 'error', progressLogs: false });
  const sysInfo: string = llama.systemInfo ?? '';
  const rel = llama.llamaCppRelease as { repo?: string; release?: string } | undefined;
  // ggml's CPU variant: the AVX-512 flag of its system-info line (the all-variants build loads the best one for this CPU)
  const avx512 = /AVX512 = 1/.test(sysInfo) ? 'AVX-512' : 'no AVX-512';
  const build = `node-llama-cpp ${version} (llama.cpp ${rel?.release ?? '?'}, ${llama.buildType ?? '?'} CPU, ${avx512})`;
  process.stderr.write(`[llamacpp-npm] ${build}\n[llamacpp-npm] system info: ${sysInfo}\n`);
  const model: any = await llama.loadModel({ modelPath: path.resolve(o.model), gpuLayers: 0 });
  // the GGUF's token list (our files: the tokenizer padded to the embedding's rows); any id in range costs the same
  const listed = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens;
  const vocab: number = Array.isArray(listed) && listed.length > 1 ? listed.length : 256;
  const next = tokenStream(vocab);
  const rows: Array<Record<string, unknown>> = [];
  const BATCH = 512;
  process.stderr.write(`[llamacpp-npm] timing through ${o.api === 'raw' ? "the addon's llama_decode (as llama-bench)" : 'LlamaContextSequence.controlledEvaluate (public API, greedy token each step)'}\n`);
  for (const t of benchTests(o)) {
    const ctx: any = await model.createContext({
      contextSize: t.n_depth + t.n_prompt + t.n_gen + 16, batchSize: Math.min(BATCH, Math.max(t.n_prompt, 1)),
      threads: { ideal: t.n_threads, min: t.n_threads }, sequences: 1,
      flashAttention: o.flashAttn === 'auto' ? 'auto' : o.flashAttn === 'on',
    });
    const seq: any = ctx.getSequence();
    const logitsOf = (tok: number) => [tok, { generateNext: { token: true } }];
    // the addon's context: llama_batch + llama_decode, as llama-bench (node-llama-cpp's internal object; --api sequence avoids it)
    const addon: any = ctx._ctx;
    const sid: number = seq._sequenceId ?? 0;
    if (o.api === 'raw' && (typeof addon?.initBatch !== 'function' || typeof addon?.addToBatch !== 'function' || typeof addon?.decodeBatch !== 'function' || typeof addon?.disposeSequence !== 'function')) {
      throw new Error(`llamacpp-npm: node-llama-cpp ${version} has no context._ctx.initBatch/addToBatch/decodeBatch/disposeSequence (its internals moved): use --api sequence`);
    }
    /** raw: one llama_decode of these tokens at positions from `pos`, logits of the last one only (llama-bench's llama_batch_get_one) */
    const decodeRaw = async (toks: number[], pos: number): Promise<void> => {
      for (let i = 0; i < toks.length; i += BATCH) {
        const part = toks.slice(i, i + BATCH);
        addon.initBatch(part.length);
        addon.addToBatch(sid, pos + i, Uint32Array.from(part), Uint32Array.from(i + part.length === toks.length ? [part.length - 1] : []));
        await addon.decodeBatch();
      }
    };
    /** clear the sequence, untimed depth tokens, then the test; returns its wall ns and the process's CPU ns (all threads) */
    const runOnce = async (test: BenchTest): Promise<[number, number]> => {
      let t0: bigint;
      let c0: NodeJS.CpuUsage;
      if (o.api === 'raw') {
        addon.disposeSequence(sid);
        if (test.n_depth > 0) await decodeRaw(Array.from({ length: test.n_depth }, next), 0);
        if (test.n_prompt > 0) {
          const toks = Array.from({ length: test.n_prompt }, next);
          c0 = process.cpuUsage();
          t0 = process.hrtime.bigint();
          await decodeRaw(toks, test.n_depth);
        } else {
          c0 = process.cpuUsage();
          t0 = process.hrtime.bigint();
          for (let i = 0; i < test.n_gen; i++) await decodeRaw([next()], test.n_depth + i);
        }
      } else {
        await seq.clearHistory();
        if (test.n_depth > 0) await seq.evaluateWithoutGeneratingNewTokens(Array.from({ length: test.n_depth }, next));
        if (test.n_prompt > 0) {
          const toks: unknown[] = Array.from({ length: test.n_prompt }, next);
          toks[toks.length - 1] = logitsOf(toks[toks.length - 1] as number);
          c0 = process.cpuUsage();
          t0 = process.hrtime.bigint();
          await seq.controlledEvaluate(toks);
        } else {
          let tok = next();
          c0 = process.cpuUsage();
          t0 = process.hrtime.bigint();
          for (let i = 0; i < test.n_gen; i++) {
            const r = await seq.controlledEvaluate([logitsOf(tok)]);
            tok = r[0]?.next?.token ?? next();
          }
        }
      }
      const ns = Number(process.hrtime.bigint() - t0);
      const c = process.cpuUsage(c0);
      return [ns, (c.user + c.system) * 1000];
    };
    await runOnce({ ...t, n_gen: Math.min(t.n_gen, 4) });
    const samples: number[] = [];
    const cpu: number[] = [];
    for (let r = 0; r < o.reps; r++) {
      const [ns, cpuNs] = await runOnce(t);
      samples.push(ns);
      cpu.push(cpuNs);
    }
    const row = benchRow(t, samples, { model: o.model, build, cpu: sysInfo.replace(/\s+/g, ' ').trim(), flashAttn: ctx.flashAttention === true ? 1 : ctx.flashAttention === false ? 0 : -1 }, cpu);
    rows.push(row);
    process.stderr.write(`[llamacpp-npm] ${path.basename(o.model)} ${testName(t)} t=${t.n_threads}: ${(row.avg_ts as number).toFixed(2)} tok/s mean, ${(row.median_ts as number).toFixed(2)} median (${(row.samples_ts as number[]).map((x) => x.toFixed(1)).join(', ')}); CPU ${(row.cpu_ms_per_token as number).toFixed(2)} ms/token (median)\n`);
    await ctx.dispose();
  }
  await model.dispose();
  await llama.dispose();
  if (o.output === 'json') {
    process.stdout.write(JSON.stringify(rows, null, 1) + '\n');
  } else {
    process.stdout.write('| model | threads | test | t/s (mean ± sd) | t/s median |\n|---|--:|--:|--:|--:|\n');
    for (const r of rows) process.stdout.write(`| ${path.basename(String(r.model_filename))} | ${r.n_threads} | ${testName(r as unknown as BenchTest)} | ${(r.avg_ts as number).toFixed(2)} ± ${(r.stddev_ts as number).toFixed(2)} | ${(r.median_ts as number).toFixed(2)} |\n`);
    process.stdout.write(`\nbuild: ${build}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`llamacpp-npm: ${(e as Error).message}\n`);
  process.exit(1);
});
