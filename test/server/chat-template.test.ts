/** Chat templates: rendering with @huggingface/jinja, message ends as token positions, template errors. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChatTemplate, ChatTemplateError } from '../../src/server/chat-template.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { writeSmallTokenizer } from '../cli/cli-helpers.js';
import { CHATML, tmpDir } from './helpers.js';

let tmp: string;
let tok: Tokenizer;
before(() => {
  tmp = tmpDir('chat-template');
  tok = Tokenizer.fromFile(writeSmallTokenizer(tmp));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function withConfig(name: string, config: unknown): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

describe('ChatTemplate', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is Mamba?' },
    { role: 'assistant', content: 'A selective state space model.' },
    { role: 'user', content: 'Thanks!' },
  ];

  it('renders the template of tokenizer_config.json; message ends are where the messages alone tokenize to', () => {
    const t = ChatTemplate.fromDir(withConfig('chatml', { chat_template: CHATML, eos_token: '<|endoftext|>' }))!;
    const text = t.render(messages, true);
    assert.equal(text, messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n');
    const r = t.encode(tok, messages);
    assert.deepEqual(r.ids, tok.encode(text, { addSpecialTokens: false }));
    assert.equal(r.messageEnds.length, 4);
    messages.forEach((_, i) => {
      const prefix = tok.encode(t.render(messages.slice(0, i + 1), false), { addSpecialTokens: false });
      assert.equal(r.messageEnds[i], prefix.length);
      assert.deepEqual(r.ids.slice(0, prefix.length), prefix);
    });
    // again (pieces remembered): the same answer
    assert.deepEqual(t.encode(tok, messages), r);
  });

  it('named templates, special tokens in the context, no template, and errors', () => {
    const named = ChatTemplate.fromDir(withConfig('named', { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: '{{ bos_token }}{{ messages[0].content }}' }], bos_token: { content: '<s>' } }))!;
    assert.equal(named.render([{ role: 'user', content: 'x' }], false), '<s>x');
    assert.equal(ChatTemplate.fromDir(withConfig('none', { eos_token: '</s>' })), null);
    assert.equal(ChatTemplate.fromDir(path.join(tmp, 'no-such-folder')), null);
    assert.throws(() => ChatTemplate.fromDir(withConfig('bad-json', '{')), (e: unknown) => e instanceof ChatTemplateError && /tokenizer_config\.json: not valid JSON/.test((e as Error).message));
    assert.throws(() => ChatTemplate.fromDir(withConfig('bad-type', { chat_template: 3 })), /"chat_template" must be a string/);
    assert.throws(() => ChatTemplate.fromDir(withConfig('bad-syntax', { chat_template: '{% for %}' })), /chat_template does not parse/);
    const strict = ChatTemplate.fromDir(withConfig('strict', { chat_template: "{% if messages[0].role != 'user' %}{{ raise_exception('the first message must be the user\\'s') }}{% endif %}ok" }))!;
    assert.throws(() => strict.render([{ role: 'system', content: 'x' }], true), (e: unknown) => e instanceof ChatTemplateError && /first message must be the user/.test((e as Error).message));
    assert.equal(strict.render([{ role: 'user', content: 'x' }], true), 'ok');
  });
});
