/**
 * The prefix-state cache: a radix tree over token ids whose nodes hold state snapshots (a `ModelState` of
 * batch 1 that has read exactly the tokens on the path from the root). A request restores the longest cached
 * prefix of its prompt and reads only the rest.
 *
 * - Snapshots are compacted (KV caches of attention layers cut to the snapshot's position), so a hybrid's
 *   snapshot is its SSM state and its KV cache at the same position.
 * - Copy on read: `lookup` hands out a copy; the cached state is never advanced, so one request can never
 *   change another's state.
 * - Memory tier: least recently used snapshots are dropped once the byte budget is exceeded.
 * - Disk tier (optional): every snapshot is also written (atomically: temp file + rename) as a safetensors
 *   state file (`ModelState.export`, the prefix's token ids in its metadata) to a folder, read back on a miss
 *   in memory and found again after a restart; the folder has its own byte budget (oldest files go first).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../io/safetensors.js';
import type { Model } from '../api/model.js';
import type { ModelState } from '../models/state.js';

export interface PrefixCacheOptions {
  /** memory budget of the snapshots, bytes (0 = no memory tier) */
  maxBytes: number;
  /** folder of the disk tier (created if missing); none = memory only */
  dir?: string;
  /** byte budget of the disk tier (default 4 GiB) */
  maxDiskBytes?: number;
  /** told about a snapshot write that failed (the cache keeps working without it) */
  onError?: (e: unknown) => void;
}

interface Entry {
  node: Node;
  /** tokens from the root */
  depth: number;
  state: ModelState | null;
  bytes: number;
  file: string | null;
  fileBytes: number;
  lastUsed: number;
}

class Node {
  readonly children = new Map<number, Node>();
  entry: Entry | null = null;
  constructor(
    /** the token ids of the edge from the parent */
    public edge: number[],
    public parent: Node | null,
  ) {}
}

export interface CacheHit {
  /** a copy of the snapshot, for the caller to advance */
  state: ModelState;
  /** prompt tokens it has read */
  tokens: number;
}

/** the metadata key holding a disk snapshot's token ids */
const TOKENS_KEY = 'prefix_tokens';

export class PrefixCache {
  private readonly root = new Node([], null);
  private clock = 0;
  private memBytes = 0;
  private diskBytes = 0;
  private readonly entries = new Set<Entry>();
  /** the disk writes in flight (`flush` waits for them) */
  private readonly writes = new Set<Promise<void>>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly model: Model,
    private readonly opts: PrefixCacheOptions,
  ) {
    if (opts.dir) {
      fs.mkdirSync(opts.dir, { recursive: true });
      this.scanDir(opts.dir);
    }
  }

  get bytes(): { memory: number; disk: number } {
    return { memory: this.memBytes, disk: this.diskBytes };
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The longest cached prefix of `tokens` of at most `maxLen` tokens, restored as a copy (null when none).
   * A snapshot found only on disk is read back (and kept in memory again).
   */
  async lookup(tokens: readonly number[], maxLen = tokens.length): Promise<CacheHit | null> {
    const found: Entry[] = [];
    let node = this.root;
    let i = 0;
    while (i < tokens.length) {
      const child = node.children.get(tokens[i]);
      if (!child) break;
      const e = child.edge;
      let j = 0;
      while (j < e.length && i + j < tokens.length && e[j] === tokens[i + j]) j++;
      if (j < e.length) break; // snapshots sit at node ends only
      i += j;
      node = child;
      if (i > maxLen) break;
      if (node.entry) found.push(node.entry);
    }
    // the deepest one that can be restored (a disk file may have gone or be unreadable)
    for (let k = found.length - 1; k >= 0; k--) {
      const entry = found[k];
      if (!entry.state && entry.file) await this.readBack(entry);
      if (!entry.state) continue;
      entry.lastUsed = ++this.clock;
      this.hits++;
      return { state: entry.state.clone(), tokens: entry.depth };
    }
    this.misses++;
    return null;
  }

  /** Whether a snapshot of exactly these tokens is cached (in memory or on disk). */
  has(tokens: readonly number[]): boolean {
    return this.find(tokens)?.entry != null;
  }

  /** Keep a snapshot of `state` (batch 1, having read exactly `tokens`); the caller keeps its own state. */
  async insert(tokens: readonly number[], state: ModelState): Promise<void> {
    if (tokens.length === 0 || (this.opts.maxBytes <= 0 && !this.opts.dir)) return;
    const node = this.nodeFor(tokens);
    if (node.entry?.state) {
      node.entry.lastUsed = ++this.clock;
      return;
    }
    const snap = await state.compact();
    // the file's bytes are taken now: the memory copy may be evicted before the write ends
    const fileBytes = this.opts.dir && !node.entry?.file ? await snap.export({ [TOKENS_KEY]: JSON.stringify(tokens) }) : null;
    const entry: Entry = node.entry ?? { node, depth: tokens.length, state: null, bytes: 0, file: null, fileBytes: 0, lastUsed: 0 };
    node.entry = entry;
    this.entries.add(entry);
    entry.lastUsed = ++this.clock;
    if (fileBytes) this.track(this.writeFile(entry, tokens, fileBytes));
    if (this.opts.maxBytes > 0 && !entry.state) {
      entry.state = snap;
      entry.bytes = snap.byteSize;
      this.memBytes += entry.bytes;
      this.evictMemory();
    } else snap.dispose();
  }

  /** Wait for the disk writes in flight. */
  async flush(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }

  /** Drop every memory snapshot (disk files stay). */
  dispose(): void {
    for (const e of this.entries) this.dropMemory(e);
  }

  private track(p: Promise<void>): void {
    const q = p.catch((e) => this.opts.onError?.(e)).finally(() => this.writes.delete(q));
    this.writes.add(q);
  }

  private find(tokens: readonly number[]): Node | null {
    let node = this.root;
    let i = 0;
    while (i < tokens.length) {
      const child = node.children.get(tokens[i]);
      if (!child || child.edge.length > tokens.length - i) return null;
      for (let j = 0; j < child.edge.length; j++) if (child.edge[j] !== tokens[i + j]) return null;
      i += child.edge.length;
      node = child;
    }
    return node;
  }

  /** the node at exactly `tokens` (edges are split or added as needed) */
  private nodeFor(tokens: readonly number[]): Node {
    let node = this.root;
    let i = 0;
    while (i < tokens.length) {
      let child = node.children.get(tokens[i]);
      if (!child) {
        const leaf = new Node(tokens.slice(i), node);
        node.children.set(tokens[i], leaf);
        return leaf;
      }
      const e = child.edge;
      let j = 0;
      while (j < e.length && i + j < tokens.length && e[j] === tokens[i + j]) j++;
      if (j < e.length) {
        const mid = new Node(e.slice(0, j), node);
        node.children.set(tokens[i], mid);
        child.edge = e.slice(j);
        child.parent = mid;
        mid.children.set(child.edge[0], child);
        child = mid;
      }
      i += j;
      node = child;
    }
    return node;
  }

  private evictMemory(): void {
    if (this.memBytes <= this.opts.maxBytes) return;
    const inMemory = [...this.entries].filter((e) => e.state).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of inMemory) {
      if (this.memBytes <= this.opts.maxBytes) break;
      this.dropMemory(e);
    }
  }

  private dropMemory(e: Entry): void {
    if (!e.state) return;
    e.state.dispose();
    e.state = null;
    this.memBytes -= e.bytes;
    e.bytes = 0;
    if (!e.file) this.remove(e);
  }

  private remove(e: Entry): void {
    this.entries.delete(e);
    let node: Node | null = e.node;
    node.entry = null;
    while (node && node.parent && !node.entry && node.children.size === 0) {
      node.parent.children.delete(node.edge[0]);
      node = node.parent;
    }
  }

  private async writeFile(entry: Entry, tokens: readonly number[], bytes: Uint8Array): Promise<void> {
    const dir = this.opts.dir!;
    const file = path.join(dir, `${prefixHash(tokens)}.safetensors`);
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      await fs.promises.writeFile(tmp, bytes, { flag: 'wx' });
      await fs.promises.rename(tmp, file);
    } catch (e) {
      await fs.promises.rm(tmp, { force: true });
      throw e;
    }
    if (!this.entries.has(entry)) return; // dropped meanwhile
    entry.file = file;
    entry.fileBytes = bytes.byteLength;
    this.diskBytes += bytes.byteLength;
    this.evictDisk();
  }

  private evictDisk(): void {
    const budget = this.opts.maxDiskBytes ?? 4 * 2 ** 30;
    if (this.diskBytes <= budget) return;
    const onDisk = [...this.entries].filter((e) => e.file).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of onDisk) {
      if (this.diskBytes <= budget) break;
      fs.rmSync(e.file!, { force: true });
      this.diskBytes -= e.fileBytes;
      e.file = null;
      e.fileBytes = 0;
      if (!e.state) this.remove(e);
    }
  }

  private async readBack(e: Entry): Promise<void> {
    try {
      const bytes = await fs.promises.readFile(e.file!);
      const state = this.model.importState(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), e.file!);
      if (state.batch !== 1 || state.seqLen[0] !== e.depth) throw new Error(`${e.file}: holds ${state.seqLen} tokens, expected ${e.depth}`);
      if (this.opts.maxBytes > 0) {
        e.state = state;
        e.bytes = state.byteSize;
        this.memBytes += e.bytes;
        this.evictMemory();
      } else {
        // no memory tier: hand out this copy once (lookup clones it), then let it go
        e.state = state;
        queueMicrotask(() => {
          if (e.state === state) {
            e.state = null;
            state.dispose();
          }
        });
      }
    } catch (err) {
      this.opts.onError?.(err);
      this.diskBytes -= e.fileBytes;
      e.file = null;
      e.fileBytes = 0;
      if (!e.state) this.remove(e);
    }
  }

  /** the snapshots a previous run left in the folder (files of another model or unreadable ones are skipped) */
  private scanDir(dir: string): void {
    const fingerprint = (() => {
      const s = this.model.createState(1);
      const fp = s.fingerprint;
      s.dispose();
      return fp;
    })();
    for (const name of fs.readdirSync(dir)) {
      if (!name.endsWith('.safetensors')) continue;
      const file = path.join(dir, name);
      try {
        const f = SafetensorsFile.open(file);
        if (f.metadata.fingerprint !== fingerprint) continue;
        const tokens = JSON.parse(f.metadata[TOKENS_KEY] ?? 'null') as unknown;
        if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => Number.isInteger(t) && t >= 0)) continue;
        const node = this.nodeFor(tokens as number[]);
        if (node.entry) continue;
        const size = fs.statSync(file).size;
        const entry: Entry = { node, depth: tokens.length, state: null, bytes: 0, file, fileBytes: size, lastUsed: ++this.clock };
        node.entry = entry;
        this.entries.add(entry);
        this.diskBytes += size;
      } catch (e) {
        this.opts.onError?.(e);
      }
    }
    this.evictDisk();
  }
}

/** the file name of a prefix's snapshot */
function prefixHash(tokens: readonly number[]): string {
  return createHash('sha256').update(new Uint8Array(Int32Array.from(tokens).buffer)).digest('hex').slice(0, 32);
}
