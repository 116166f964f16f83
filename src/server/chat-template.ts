/**
 * Chat templates: the model folder's tokenizer_config.json `chat_template` (Jinja, rendered with
 * `@huggingface/jinja`, what transformers.js uses) turns OpenAI-style messages into prompt token ids, and tells
 * where each message ends in them (the prefix cache keeps a snapshot there, so the next turn of the
 * conversation reads only what is new).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../tokenizer/core.js';
import { MambaTsError } from '../errors.js';

/** A template that cannot be read or rendered (for a request's messages: an HTTP 400). */
export class ChatTemplateError extends MambaTsError {}

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface RenderedChat {
  ids: number[];
  /** token counts after which a message ends (where a prefix of the messages renders to a prefix of `ids`) */
  messageEnds: number[];
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    /** special tokens' texts the templates use (bos_token, eos_token, ...) */
    private readonly specials: Record<string, string>,
    private readonly label: string,
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`${label}: chat_template does not parse: ${(e as Error).message}`);
    }
  }

  /**
   * The chat template of a model folder's tokenizer_config.json (a string, or the "default" of a list of
   * named templates); null when there is none.
   */
  static fromDir(dir: string): ChatTemplate | null {
    const file = path.join(dir, 'tokenizer_config.json');
    if (!fs.existsSync(file)) return null;
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new ChatTemplateError(`${file}: not valid JSON: ${(e as Error).message}`);
    }
    let src = cfg.chat_template;
    if (Array.isArray(src)) src = (src.find((t) => t?.name === 'default') ?? src[0])?.template;
    if (src === undefined || src === null) return null;
    if (typeof src !== 'string') throw new ChatTemplateError(`${file}: field "chat_template" must be a string or a list of {name, template}`);
    const specials: Record<string, string> = {};
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const v = cfg[k];
      const text = typeof v === 'string' ? v : typeof (v as { content?: unknown })?.content === 'string' ? (v as { content: string }).content : undefined;
      if (text !== undefined) specials[k] = text;
    }
    return new ChatTemplate(src, specials, file);
  }

  /** The prompt text for `messages` (with the assistant's turn opened when `addGenerationPrompt`). */
  render(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    try {
      return this.template.render({
        ...this.specials,
        messages,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (e) {
      // raise_exception(...) in a template (built into the library) lands here too
      throw new ChatTemplateError(`${this.label}: chat_template failed on these messages: ${(e as Error).message}`);
    }
  }

  /**
   * Render and tokenize (special tokens are written by the template, none are added). Message ends: where the
   * text of the first i messages ends (rendered alone, a prefix of the whole), mapped to token positions by
   * tokenizing the text message by message and keeping the ends up to where those pieces' ids stop agreeing with
   * the whole's (a BPE merge across a boundary). Pieces are remembered, so a conversation's next turn tokenizes
   * only its new messages besides the whole prompt.
   */
  encode(tokenizer: Tokenizer, messages: ChatMessage[], addGenerationPrompt = true): RenderedChat {
    const text = this.render(messages, addGenerationPrompt);
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    const charEnds: number[] = [];
    for (let i = 1; i <= messages.length; i++) {
      let prefix: string;
      try {
        prefix = this.render(messages.slice(0, i), false);
      } catch {
        continue; // some templates refuse a conversation that does not end where they expect
      }
      if (prefix.length > (charEnds.at(-1) ?? 0) && prefix.length < text.length && text.startsWith(prefix)) charEnds.push(prefix.length);
    }
    const messageEnds: number[] = [];
    let pos = 0;
    let from = 0;
    for (const c of charEnds) {
      const piece = this.piece(tokenizer, text.slice(from, c));
      for (let k = 0; k < piece.length; k++) if (ids[pos + k] !== piece[k]) return { ids, messageEnds };
      pos += piece.length;
      from = c;
      if (pos > 0 && pos < ids.length) messageEnds.push(pos);
    }
    return { ids, messageEnds };
  }

  private readonly pieces = new Map<string, number[]>();
  private piecesChars = 0;

  /** the ids of a piece of text, remembered (least recently used out beyond PIECES_MAX_CHARS) */
  private piece(tokenizer: Tokenizer, text: string): number[] {
    const hit = this.pieces.get(text);
    if (hit) {
      this.pieces.delete(text);
      this.pieces.set(text, hit);
      return hit;
    }
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    this.pieces.set(text, ids);
    this.piecesChars += text.length;
    for (const [k] of this.pieces) {
      if (this.piecesChars <= PIECES_MAX_CHARS) break;
      this.pieces.delete(k);
      this.piecesChars -= k.length;
    }
    return ids;
  }
}

/** text of remembered message pieces, at most (characters) */
const PIECES_MAX_CHARS = 16 * 2 ** 20;
