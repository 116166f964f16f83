#!/usr/bin/env node
/**
 * The `mamba-ts` command line. `run(argv, io)` is the whole CLI as a function (tests call it in
 * process); the bottom of this file wires it to the real process when run as a program.
 *
 * Exit codes: 0 ok, 1 error (a MambaTsError or a file error: message only; internal errors: with stack),
 * 2 usage error, 130 generation interrupted (SIGINT).
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MambaTsError } from '../errors.js';
import { commandUsage, PROG, UsageError, type CommandSpec } from './args.js';
import { GENERATE_SPEC, generateCommand } from './generate.js';
import { INFO_SPEC, infoCommand } from './info.js';
import { DOWNLOAD_SPEC, downloadCommand } from './download.js';
import { BENCH_SPEC, runBench } from './bench.js';
import { EVAL_SPEC, evalCommand, TRAIN_SPEC, trainCommand } from './train.js';
import { EXPORT_SPEC, exportCommand } from './export.js';
import { SERVE_SPEC, serveCommand } from './serve.js';
import { systemMessage, type CliIO } from './io.js';

export type { CliIO, OutStream } from './io.js';

interface Command {
  spec: CommandSpec;
  run(argv: string[], io: CliIO): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  generate: { spec: GENERATE_SPEC, run: generateCommand },
  info: { spec: INFO_SPEC, run: infoCommand },
  bench: { spec: BENCH_SPEC, run: runBench },
  train: { spec: TRAIN_SPEC, run: trainCommand },
  eval: { spec: EVAL_SPEC, run: evalCommand },
  download: { spec: DOWNLOAD_SPEC, run: downloadCommand },
  export: { spec: EXPORT_SPEC, run: exportCommand },
  serve: { spec: SERVE_SPEC, run: serveCommand },
};

/** The package version, from the package.json two folders above dist/src/cli. */
export function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function overview(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length), 4);
  return [
    `${PROG} ${version()} — Mamba state-space language models in TypeScript`,
    '',
    `Usage: ${PROG} <command> [options]`,
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n].spec.summary}`),
    `  ${'help'.padEnd(width)}  Show the help of a command (${PROG} help generate)`,
    '',
    'Options:',
    '  -h, --help     show this help and exit',
    '  -V, --version  print the version and exit',
    '',
    `Run '${PROG} <command> --help' for the options of a command.`,
    '',
    'Examples:',
    `  ${PROG} info --model ./mamba-130m-hf`,
    `  ${PROG} download state-spaces/mamba-130m-hf`,
    `  ${PROG} generate --model ./mamba-130m-hf --prompt "The state space model" --max-tokens 32`,
    `  ${PROG} generate --model ./mamba-130m-hf --prompt "The state space model" --backend webgpu`,
    `  ${PROG} bench --arch mamba2 --backend webgpu --prompt 2048`,
    `  ${PROG} export --model ./mamba-130m-hf --gguf mamba-130m-q8_0.gguf --type q8_0`,
    '',
  ].join('\n');
}

function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  const err = e as NodeJS.ErrnoException;
  return e instanceof Error && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code) && typeof err.syscall === 'string';
}

/** Run the CLI on `argv` (the arguments after the program name). Resolves to the exit code. */
export async function run(argv: string[], io: CliIO): Promise<number> {
  try {
    const [first, ...others] = argv;
    let rest = others;
    if (first === undefined || first === '--help' || first === '-h') {
      io.stdout.write(overview());
      return 0;
    }
    if (first === '--version' || first === '-V' || first === '-v') {
      io.stdout.write(`${version()}\n`);
      return 0;
    }
    if (first === 'help') {
      // `help --help`, `help help`: the overview; `help generate --help`: generate's help
      rest = rest.filter((a) => a !== '--help' && a !== '-h');
      if (rest.length === 0 || rest[0] === 'help') {
        io.stdout.write(overview());
        return 0;
      }
      const cmd = COMMANDS[rest[0]];
      if (!cmd) throw new UsageError(`help: unknown command '${rest[0]}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
      io.stdout.write(commandUsage(cmd.spec));
      return 0;
    }
    const cmd = COMMANDS[first];
    if (!cmd) {
      const what = first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`;
      throw new UsageError(`${what} (commands: ${Object.keys(COMMANDS).join(', ')})`);
    }
    return await cmd.run(rest, io);
  } catch (e) {
    return report(e, io);
  }
}

/** Print an error the way the CLI does and return its exit code. */
export function report(e: unknown, io: CliIO): number {
  if (e instanceof UsageError) {
    io.stderr.write(`${PROG}: error: ${e.message}\n`);
    io.stderr.write(`Run '${PROG}${e.command ? ` ${e.command}` : ''} --help' for usage.\n`);
    return 2;
  }
  // every error mamba-ts throws on purpose: its message is meant for the user (no stack trace)
  if (e instanceof MambaTsError) {
    io.stderr.write(`${PROG}: error: ${e.message}\n`);
    return 1;
  }
  if (isSystemError(e)) {
    io.stderr.write(`${PROG}: error: ${systemMessage(e)}${e.path ? `: ${e.path}` : ''}\n`);
    return 1;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  io.stderr.write(`${PROG}: internal error: ${err.message}\n${err.stack ?? ''}\n`);
  return 1;
}

function isMain(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return fs.realpathSync(script) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  // `mamba-ts generate … | head`: a closed pipe ends the program quietly
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, handleSigint: true }).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${PROG}: internal error: ${String((e as Error)?.stack ?? e)}\n`);
      process.exitCode = 1;
    },
  );
}
