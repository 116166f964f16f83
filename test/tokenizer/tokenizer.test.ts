import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer, TokenizerError, StreamDecoder } from "../../src/tokenizer/tokenizer.js";

// Compiled to dist/test/tokenizer/; fixtures stay in the source tree.
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..", "..");
const fixtureDir = join(repoRoot, "test", "fixtures", "tokenizer-bpe");
const tokenizerPath = join(fixtureDir, "tokenizer.json");

interface RefCase {
  text: string;
  ids: number[];
  decoded: string;
}
const reference: RefCase[] = JSON.parse(readFileSync(join(fixtureDir, "tokenizer-reference.json"), "utf8"));
const tok = Tokenizer.fromFile(fixtureDir);

const FFFD = "\uFFFD";

function stream(t: Tokenizer, ids: number[], skipSpecialTokens?: boolean): string[] {
  const sd = new StreamDecoder(t, skipSpecialTokens === undefined ? {} : { skipSpecialTokens });
  const pieces = ids.map((id) => sd.push(id));
  pieces.push(sd.flush());
  return pieces;
}

/** Deterministic PRNG (mulberry32) for the randomized checks. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("Tokenizer vs Rust tokenizers reference", () => {
  test("fixture has cases, including multi-byte text", () => {
    assert.equal(reference.length, 8);
    assert.ok(reference.some((r) => /[^\x00-\x7f]/.test(r.text)), "fixture should contain non-ASCII text");
  });

  for (const [i, r] of reference.entries()) {
    const name = `case ${i}: ${JSON.stringify(r.text).slice(0, 40)}`;
    test(`encode ${name}`, () => {
      // The fixture used Rust `tok.encode(s)` (add_special_tokens=True default).
      assert.deepEqual(tok.encode(r.text), r.ids);
      assert.deepEqual(tok.encode(r.text, { addSpecialTokens: true }), r.ids);
    });
    test(`decode ${name}`, () => {
      // The fixture used Rust `tok.decode(ids)` (skip_special_tokens=True default).
      assert.equal(tok.decode(r.ids), r.decoded);
      assert.equal(tok.decode(r.ids, { skipSpecialTokens: true }), r.decoded);
    });
    test(`stream ${name}`, () => {
      const pieces = stream(tok, r.ids);
      assert.equal(pieces.join(""), tok.decode(r.ids));
      assert.equal(pieces.join(""), r.decoded);
      if (!r.decoded.includes(FFFD)) {
        for (const p of pieces) assert.ok(!p.includes(FFFD), `piece ${JSON.stringify(p)} contains U+FFFD`);
      }
    });
  }
});

describe("Tokenizer API", () => {
  test("vocab, special tokens, token<->id", () => {
    assert.equal(tok.vocabSize, 2048);
    assert.equal(tok.tokenToId("<|endoftext|>"), 0);
    assert.equal(tok.tokenToId("<|padding|>"), 1);
    assert.equal(tok.idToToken(0), "<|endoftext|>");
    assert.equal(tok.idToToken(2048), undefined);
    assert.equal(tok.idToToken(-1), undefined);
    assert.equal(tok.tokenToId("no such token here"), undefined);
    assert.equal(tok.eosTokenId, 0); // from the <|endoftext|> added token (no tokenizer_config.json)
    assert.equal(tok.bosTokenId, undefined);
    for (const id of [2, 100, 1000, 2047]) {
      const t = tok.idToToken(id);
      assert.ok(t !== undefined);
      assert.equal(tok.tokenToId(t), id);
    }
  });

  test("special tokens: encode recognises them, decode keeps them when asked", () => {
    const ids = tok.encode("<|endoftext|>after special");
    assert.equal(ids[0], 0);
    assert.deepEqual(tok.encode("<|endoftext|>after special", { addSpecialTokens: false }), ids);
    assert.equal(tok.decode(ids, { skipSpecialTokens: false }), "<|endoftext|>after special");
    assert.equal(stream(tok, ids, false).join(""), "<|endoftext|>after special");
    assert.equal(tok.decode([1, 0, 1]), "");
  });

  test("empty and unknown ids", () => {
    assert.deepEqual(tok.encode(""), []);
    assert.equal(tok.decode([]), "");
    // Ids without a token are dropped, as the Rust library does.
    assert.equal(tok.decode([5000, ...tok.encode("hi")]), "hi");
    assert.throws(() => tok.decode([-1]), TokenizerError);
    assert.throws(() => tok.decode([1.5]), TokenizerError);
  });

  test("fromFile accepts a tokenizer.json path; existsIn", () => {
    const t = Tokenizer.fromFile(tokenizerPath);
    assert.deepEqual(t.encode("Hello, world!"), reference[0].ids);
    assert.equal(Tokenizer.existsIn(fixtureDir), true);
    assert.equal(Tokenizer.existsIn(join(fixtureDir, "nope")), false);
    assert.equal(Tokenizer.existsIn(here), false);
  });

  test("tokenizer_config.json: eos/bos tokens (string or AddedToken form)", () => {
    const json = JSON.parse(readFileSync(tokenizerPath, "utf8"));
    const t1 = Tokenizer.fromJSON(json, { eos_token: "<|padding|>", bos_token: { content: "<|endoftext|>" } });
    assert.equal(t1.eosTokenId, 1);
    assert.equal(t1.bosTokenId, 0);
    const dir = mkdtempSync(join(tmpdir(), "tok-cfg-"));
    try {
      copyFileSync(tokenizerPath, join(dir, "tokenizer.json"));
      writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" }));
      const t2 = Tokenizer.fromFile(dir);
      assert.equal(t2.eosTokenId, 0);
      assert.equal(t2.bosTokenId, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("StreamDecoder", () => {
  const multiByteTexts = [
    "Unicode: 状态空间模型 — Mamba 🐍 naïve café",
    "👩‍👩‍👧‍👦 family, 🇯🇵 flag, 🧪🧬 science",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "Ελληνικά, русский, עברית, العربية, हिन्दी",
    "Ångström ñandú façade — “quotes” … ©®™ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
  ];
  for (const text of multiByteTexts) {
    test(`multi-byte: ${text.slice(0, 20)}`, () => {
      const ids = tok.encode(text);
      const full = tok.decode(ids);
      assert.equal(full, text); // byte-level BPE is lossless
      const pieces = stream(tok, ids);
      assert.equal(pieces.join(""), full);
      for (const p of pieces) assert.ok(!p.includes(FFFD), `piece ${JSON.stringify(p)} contains U+FFFD`);
      // Some tokens really do split characters (otherwise this test would prove nothing).
      assert.ok(pieces.some((p) => p === ""), "expected at least one token that completes no character");
    });
  }

  test("ids ending mid-character: flush emits the replacement char, like decode", () => {
    // Byte-level alphabet: byte 0xF0 (start of a 4-byte sequence) is the char "ð".
    const lead = tok.tokenToId("ð");
    assert.ok(lead !== undefined);
    const ids = [...tok.encode("ok "), lead];
    const full = tok.decode(ids);
    assert.ok(full.endsWith(FFFD));
    const pieces = stream(tok, ids);
    assert.equal(pieces.join(""), full);
    assert.ok(pieces.slice(0, -1).every((p) => !p.includes(FFFD)));
  });

  test("invalid byte in the middle is emitted once it is followed by more text", () => {
    const lead = tok.tokenToId("ð")!;
    const ids = [...tok.encode("a"), lead, ...tok.encode(" b c d")];
    const full = tok.decode(ids);
    assert.ok(full.includes(FFFD));
    assert.equal(stream(tok, ids).join(""), full);
  });

  test("randomized byte-level text: stream == decode", () => {
    const rand = rng(1234);
    const alphabet = [..."ab cdé\n\t,.'!?ñ中文🐍👩‍👧", "def ", "return", "  ", "é", "💥"];
    for (let n = 0; n < 200; n++) {
      let s = "";
      const len = 1 + Math.floor(rand() * 30);
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
      const ids = tok.encode(s);
      const pieces = stream(tok, ids);
      assert.equal(pieces.join(""), tok.decode(ids), `text ${JSON.stringify(s)}`);
      for (const p of pieces) assert.ok(!p.includes(FFFD), `text ${JSON.stringify(s)} piece ${JSON.stringify(p)}`);
    }
  });

  test("with clean_up_tokenization_spaces from tokenizer_config: stream == decode", () => {
    const json = JSON.parse(readFileSync(tokenizerPath, "utf8"));
    const t = Tokenizer.fromJSON(json, { clean_up_tokenization_spaces: true });
    assert.equal(t.decode(t.encode("Hello , world ! I 'm here")), "Hello, world! I'm here");
    // Default (no config flag): lossless, like the Rust library.
    assert.equal(tok.decode(tok.encode("Hello , world ! I 'm here")), "Hello , world ! I 'm here");
    const rand = rng(99);
    const alphabet = [" ", " ", ",", ".", "'", "n", "t", "s", "m", "v", "e", "r", "?", "!", "x", "é", "🐍", "n't", " 's"];
    for (let n = 0; n < 300; n++) {
      let s = "";
      const len = 1 + Math.floor(rand() * 25);
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
      const ids = t.encode(s);
      assert.equal(stream(t, ids).join(""), t.decode(ids), `text ${JSON.stringify(s)}`);
    }
  });

  test("window stays bounded (O(1) per token)", () => {
    const text = "the quick brown fox jumps over the lazy dog. ".repeat(200);
    const ids = tok.encode(text);
    const sd = new StreamDecoder(tok);
    let out = "";
    let maxWindow = 0;
    for (const id of ids) {
      out += sd.push(id);
      maxWindow = Math.max(maxWindow, (sd as unknown as { ids: number[] }).ids.length);
    }
    out += sd.flush();
    assert.equal(out, text);
    assert.ok(maxWindow <= 4, `window grew to ${maxWindow}`);
  });
});

describe("Tokenizer errors", () => {
  const dir = mkdtempSync(join(tmpdir(), "tok-err-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

  function assertTokErr(fn: () => unknown, path: string, re?: RegExp): void {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof TokenizerError, `expected TokenizerError, got ${String(e)}`);
      assert.ok(e.message.includes(path), `message ${JSON.stringify(e.message)} should name ${path}`);
      if (re) assert.match(e.message, re);
      return true;
    });
  }

  test("missing file", () => {
    const p = join(dir, "does-not-exist", "tokenizer.json");
    assertTokErr(() => Tokenizer.fromFile(p), p, /not found/);
  });

  test("folder without tokenizer.json", () => {
    assertTokErr(() => Tokenizer.fromFile(dir), dir, /tokenizer\.json/);
    assert.equal(Tokenizer.existsIn(dir), false);
  });

  test("malformed JSON", () => {
    const p = join(dir, "malformed.json");
    writeFileSync(p, '{"model": {"type": "BPE", ');
    assertTokErr(() => Tokenizer.fromFile(p), p, /malformed JSON/);
  });

  test("JSON that is not a tokenizer", () => {
    for (const [name, content] of [["empty.json", "{}"], ["array.json", "[1,2]"], ["null.json", "null"], ["nomodel.json", '{"version":"1.0"}']]) {
      const p = join(dir, name);
      writeFileSync(p, content);
      assertTokErr(() => Tokenizer.fromFile(p), p, /not a tokenizer\.json/);
    }
    assertTokErr(() => Tokenizer.fromJSON({}, undefined, "my-label"), "my-label", /not a tokenizer\.json/);
  });

  test("malformed tokenizer_config.json next to tokenizer.json", () => {
    const d = mkdtempSync(join(dir, "badcfg-"));
    copyFileSync(tokenizerPath, join(d, "tokenizer.json"));
    const cfg = join(d, "tokenizer_config.json");
    writeFileSync(cfg, "{not json");
    assertTokErr(() => Tokenizer.fromFile(d), cfg, /malformed JSON/);
  });
});
