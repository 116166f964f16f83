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

  /** Render and tokenize (special tokens are written by the template, none are added). */
  encode(tokenizer: Tokenizer, messages: ChatMessage[], addGenerationPrompt = true): RenderedChat {
    const ids = tokenizer.encode(this.render(messages, addGenerationPrompt), { addSpecialTokens: false });
    const messageEnds: number[] = [];
    for (let i = 1; i <= messages.length; i++) {
      let prefix: number[];
      try {
        prefix = tokenizer.encode(this.render(messages.slice(0, i), false), { addSpecialTokens: false });
      } catch {
        continue; // some templates refuse a conversation that does not end with a user turn
      }
      if (prefix.length > 0 && prefix.length < ids.length && prefix.every((t, k) => t === ids[k])) messageEnds.push(prefix.length);
    }
    return { ids, messageEnds };
  }
}
