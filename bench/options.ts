/**
 * Command-line options of the benchmark scripts (`--name value`; lists comma-separated, parsed by src/cli/args.ts,
 * so a bad value is a usage error naming the option and what it expects).
 */
import { parseList, parseNumber } from '../src/cli/args.js';

/** the value after `--name` on the command line, or `dflt` when the option is absent */
export function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}

/** `--name a,b,c` → its items, each one of `choices` when given; an absent option with an empty default → [] */
export function listArg<T extends string = string>(name: string, dflt: string, choices?: readonly T[]): T[] {
  const raw = arg(name, dflt);
  return raw === '' && dflt === '' ? [] : parseList(name, raw, choices);
}

/** `--name 1,2,4` → positive integers */
export function intListArg(name: string, dflt: string): number[] {
  return listArg(name, dflt).map((v) => parseNumber(name, v, { integer: true, min: 1, expect: `positive integers separated by commas` }));
}

/**
 * The passes of a table over several option lists (webgpu.bench's batch table: --decode-rows, --state-rows,
 * --batch-decode): lists with more than one value and the same length are zipped — pass i takes value i of each, the
 * others their one value (`0,auto,0,auto` with `1,4,1,4`: four passes, before / new alternated) —, otherwise every
 * combination runs, the first list outermost. An empty list takes its default.
 */
export function zipOrCross<T extends readonly unknown[]>(lists: { [K in keyof T]: readonly T[K][] }, defaults: T): T[] {
  const ls = (lists as readonly (readonly unknown[])[]).map((l, i) => (l.length ? l : [defaults[i]]));
  const n = Math.max(...ls.map((l) => l.length));
  const zip = n > 1 && ls.filter((l) => l.length === n).length >= 2 && ls.every((l) => l.length === 1 || l.length === n);
  if (zip) return Array.from({ length: n }, (_, i) => ls.map((l) => (l.length === n ? l[i] : l[0])) as unknown as T);
  return ls.reduce<unknown[][]>((acc, l) => acc.flatMap((a) => l.map((v) => [...a, v])), [[]]) as unknown as T[];
}
