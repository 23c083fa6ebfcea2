// The official `@anthropic-ai/sdk` npm package against a running tidegate:
// /v1/messages (plain, streamed, tools), count_tokens, models and typed errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';

import { bounded, outputTokens, rejectsAs, simMarker, useFleet } from './tidegate.mjs';

// Retries off: an error must reach the test as the class the SDK made of it
// (the SDK would retry 429 and 529 by itself).
const env = useFleet((url, apiKey) => new Anthropic({ baseURL: url, apiKey, maxRetries: 0, timeout: 20_000 }));

const weatherTool = {
  name: 'get_weather',
  description: 'Weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const hello = [{ role: 'user', content: 'Hello' }];

// "chat" is translated to the sim's chat; "claude" goes to an
// Anthropic-dialect upstream.
for (const model of ['chat', 'claude']) {
  describe(`messages on ${model}`, bounded, () => {
    it('answers with usage', async () => {
      const msg = await env.client.messages.create({ model, max_tokens: 256, system: 'Be brief.', messages: hello });
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.equal(msg.content.length, 1);
      assert.equal(msg.content[0].type, 'text');
      assert.ok(msg.content[0].text.startsWith(simMarker), msg.content[0].text);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.output_tokens, outputTokens);
      assert.ok(msg.usage.input_tokens > 0, `input_tokens ${msg.usage.input_tokens}`);
    });

    it('streams events the SDK accumulates', async () => {
      const stream = env.client.messages.stream({ model, max_tokens: 256, messages: [{ role: 'user', content: 'Stream to me' }] });
      const types = new Set();
      let text = '';
      stream.on('streamEvent', (ev) => types.add(ev.type));
      stream.on('text', (delta) => { text += delta; });
      const msg = await stream.finalMessage();
      for (const want of ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']) {
        assert.ok(types.has(want), `no ${want} in ${[...types]}`);
      }
      assert.ok(text.startsWith(simMarker), text);
      assert.equal(msg.content[0].text, text);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.output_tokens, outputTokens);
      assert.ok(msg.usage.input_tokens > 0, `input_tokens ${msg.usage.input_tokens}`);
    });

    it('uses a tool and answers its result', async () => {
      const messages = [{ role: 'user', content: 'Weather in Hangzhou?' }];
      const first = await env.client.messages.create({ model, max_tokens: 256, messages, tools: [weatherTool] });
      assert.equal(first.stop_reason, 'tool_use');
      const use = first.content.find((b) => b.type === 'tool_use');
      assert.ok(use, `no tool_use in ${JSON.stringify(first.content)}`);
      assert.equal(use.name, 'get_weather');
      assert.equal(typeof use.input.city, 'string');

      messages.push(
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temp_c":21}' }] },
      );
      const second = await env.client.messages.create({ model, max_tokens: 256, messages, tools: [weatherTool] });
      assert.equal(second.stop_reason, 'end_turn');
      assert.ok(second.content[0].text.startsWith(simMarker), JSON.stringify(second.content));
    });

    it('streams a tool use whole', async () => {
      const msg = await env.client.messages
        .stream({ model, max_tokens: 256, messages: [{ role: 'user', content: 'Weather in Hangzhou?' }], tools: [weatherTool] })
        .finalMessage();
      assert.equal(msg.stop_reason, 'tool_use');
      const use = msg.content.find((b) => b.type === 'tool_use');
      assert.equal(use?.name, 'get_weather');
      assert.equal(typeof use.input.city, 'string');
    });

    it('carries a request-id and toolu_ tool ids', async () => {
      const msg = await env.client.messages.create({
        model, max_tokens: 256, messages: [{ role: 'user', content: 'Weather in Hangzhou?' }], tools: [weatherTool],
      });
      // The SDK reads request-id into _request_id (null when the header is absent).
      assert.match(msg._request_id, /^req_/);
      const use = msg.content.find((b) => b.type === 'tool_use');
      assert.match(use?.id ?? '', /^toolu_/, JSON.stringify(msg.content));
    });

    it('counts tokens', async () => {
      const count = await env.client.messages.countTokens({ model, system: 'Be brief.', messages: hello, tools: [weatherTool] });
      assert.ok(Number.isInteger(count.input_tokens) && count.input_tokens > 0, `input_tokens ${count.input_tokens}`);
      const shorter = await env.client.messages.countTokens({ model, messages: hello });
      assert.ok(shorter.input_tokens < count.input_tokens, `${shorter.input_tokens} >= ${count.input_tokens}`);
    });
  });
}

describe('models', bounded, () => {
  it('lists models to a client that sends anthropic-version', async () => {
    const page = await env.client.models.list();
    const ids = page.data.map((m) => m.id);
    assert.ok(ids.includes('claude') && ids.includes('chat'), `models: ${ids}`);
    for (const m of page.data) {
      assert.equal(m.type, 'model');
      assert.equal(typeof m.display_name, 'string');
      assert.ok(!Number.isNaN(Date.parse(m.created_at)), `created_at ${m.created_at}`);
    }
  });
});

describe('typed errors', bounded, () => {
  const ask = (c, model = 'chat') => c.messages.create({ model, max_tokens: 16, messages: hello });

  it('401 is an AuthenticationError', async () => {
    await rejectsAs(ask(env.clientFor('tg-not-a-key')), Anthropic.AuthenticationError, (err) => {
      assert.equal(err.status, 401);
    });
  });

  it('an unknown model is a NotFoundError in Anthropic\'s shape', async () => {
    await rejectsAs(ask(env.client, 'no-such-model'), Anthropic.NotFoundError, (err) => {
      assert.equal(err.error?.type, 'error');
      assert.equal(err.error?.error?.type, 'not_found_error');
    });
  });

  it('a key past its rpm gets a RateLimitError', async () => {
    const limited = env.clientFor(await env.fleet.createKey({ name: 'node-anthropic-rpm1', project: 'node', rpm: 1 }));
    await ask(limited);
    await rejectsAs(ask(limited), Anthropic.RateLimitError, (err) => {
      assert.equal(err.error?.error?.type, 'rate_limit_error');
      assert.ok(Number(err.headers.get('retry-after')) > 0, `retry-after ${err.headers.get('retry-after')}`);
    });
  });

  it('an overloaded provider is an OverloadedError (529)', async () => {
    const err = await ask(env.client, 'down').then(() => assert.fail('a model that always fails answered'), (e) => e);
    assert.ok(err instanceof Anthropic.OverloadedError, `${err.constructor.name}: ${err.message}`);
    assert.equal(err.status, 529);
    assert.equal(err.error?.error?.type, 'overloaded_error');
  });
});
