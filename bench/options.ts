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
