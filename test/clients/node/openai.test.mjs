// The official `openai` npm package against a running tidegate: chat (plain,
// streamed, tools, structured output), embeddings, models, typed errors and
// the Responses API.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';

import { bounded, outputTokens, rejectsAs, simMarker, useFleet } from './tidegate.mjs';

// Retries off: an error must reach the test as the class the SDK made of it.
const env = useFleet((url, apiKey) => new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 }));

const weatherParameters = {
  type: 'object',
  properties: { city: { type: 'string' } },
  required: ['city'],
  additionalProperties: false,
};
const weatherTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather in a city', parameters: weatherParameters },
};


// "chat" is served by the built-in sim, "claude" by an Anthropic-dialect upstream.
for (const model of ['chat', 'claude']) {
  describe(`chat completions on ${model}`, bounded, () => {
    it('answers with usage and the contract headers', async () => {
      const { data, response } = await env.client.chat.completions
        .create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }] })
        .withResponse();
      assert.ok(data.choices[0].message.content.startsWith(simMarker), data.choices[0].message.content);
      assert.equal(data.choices[0].finish_reason, 'stop');
      assert.equal(data.usage.completion_tokens, outputTokens);
      assert.ok(data.usage.prompt_tokens > 0, `prompt_tokens ${data.usage.prompt_tokens}`);
      assert.ok(response.headers.get('x-request-id'));
      assert.ok(response.headers.get('x-tidegate-route'));
      assert.equal(response.headers.get('x-tidegate-attempts'), '1');
    });

    it('streams chunks and a final usage chunk', async () => {
      const stream = await env.client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'Stream to me' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let chunks = 0;
      let usage;
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      assert.ok(text.startsWith(simMarker), text);
      assert.ok(chunks >= outputTokens, `${chunks} chunks, want one per token at least`);
      assert.equal(usage?.completion_tokens, outputTokens);
    });

    it('accumulates a stream with the SDK helper', async () => {
      const runner = env.client.chat.completions.stream({
        model,
        messages: [{ role: 'user', content: 'Stream to me' }],
        stream_options: { include_usage: true },
      });
      let deltas = '';
      runner.on('content', (delta) => { deltas += delta; });
      const done = await runner.finalChatCompletion();
      assert.equal(done.choices[0].message.content, deltas);
      assert.ok(deltas.startsWith(simMarker), deltas);
      assert.equal(done.usage?.completion_tokens, outputTokens);
    });

    it('calls a tool and answers its result', async () => {
      const messages = [{ role: 'user', content: 'Weather in Hangzhou?' }];
      const first = await env.client.chat.completions.create({ model, messages, tools: [weatherTool] });
      const msg = first.choices[0].message;
      assert.equal(first.choices[0].finish_reason, 'tool_calls');
      assert.equal(msg.tool_calls?.length, 1);
      assert.equal(msg.tool_calls[0].function.name, 'get_weather');
      assert.equal(typeof JSON.parse(msg.tool_calls[0].function.arguments).city, 'string');

      messages.push(msg, { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: '{"temp_c":21}' });
      const second = await env.client.chat.completions.create({ model, messages, tools: [weatherTool] });
      assert.ok(second.choices[0].message.content.startsWith(simMarker), second.choices[0].message.content);
      assert.ok(!second.choices[0].message.tool_calls?.length, 'a tool call after the tool result');
    });

    it('streams a tool call whole through the SDK helper', async () => {
      const done = await env.client.chat.completions
        .stream({ model, messages: [{ role: 'user', content: 'Weather in Hangzhou?' }], tools: [weatherTool] })
        .finalChatCompletion();
      const calls = done.choices[0].message.tool_calls;
      assert.equal(calls?.length, 1);
      assert.equal(calls[0].function.name, 'get_weather');
      assert.equal(typeof JSON.parse(calls[0].function.arguments).city, 'string');
    });

    it('runs a tool round trip with runTools', async () => {
      const seen = [];
      const runner = env.client.chat.completions.runTools({
        model,
        messages: [{ role: 'user', content: 'Weather in Hangzhou?' }],
        tools: [{
          type: 'function',
          function: {
            name: 'get_weather',
            parameters: weatherParameters,
            parse: JSON.parse,
            function: (args) => { seen.push(args); return { temp_c: 21 }; },
          },
        }],
      });
      const content = await runner.finalContent();
      assert.equal(seen.length, 1);
      assert.equal(typeof seen[0].city, 'string');
      assert.ok(content.startsWith(simMarker), content);
    });
  });
}

describe('structured output', bounded, () => {
  const Weather = z.object({ city: z.string(), temp_c: z.number(), sunny: z.boolean() });
  const format = zodResponseFormat(Weather, 'weather');

  it('parses a json_schema answer with chat.completions.parse', async () => {
    // Without the helper first: a schema-invalid answer is then named, where
    // the helper would only report a ZodError.
    const raw = await env.client.chat.completions.create({
      model: 'chat', messages: [{ role: 'user', content: 'Weather in Hangzhou as JSON' }], response_format: format,
    });
    const content = raw.choices[0].message.content;
    assert.ok(Weather.safeParse(JSON.parse(content)).success, `not valid for the schema: ${content}`);
    const done = await env.client.chat.completions.parse({
      model: 'chat', messages: [{ role: 'user', content: 'Weather in Hangzhou as JSON' }], response_format: format,
    });
    const parsed = done.choices[0].message.parsed;
    assert.deepEqual(Weather.parse(parsed), parsed);
    assert.equal(done.choices[0].message.refusal ?? null, null);
  });

  it('answers JSON mode with JSON, n times', async () => {
    const done = await env.client.chat.completions.create({
      model: 'chat', n: 2, seed: 7, response_format: { type: 'json_object' },
      messages: [{ role: 'user', content: 'Two answers as JSON' }],
    });
    assert.deepEqual(done.choices.map((c) => c.index), [0, 1]);
    for (const c of done.choices) assert.equal(typeof JSON.parse(c.message.content), 'object');
  });
});

describe('embeddings and models', bounded, () => {
  it('embeds, in the SDK\'s default base64 and in floats alike', async () => {
    const input = ['tide', 'gate'];
    // The SDK asks for base64 unless told otherwise and decodes it itself.
    const b64 = await env.client.embeddings.create({ model: 'embed', input });
    const floats = await env.client.embeddings.create({ model: 'embed', input, encoding_format: 'float' });
    assert.deepEqual(b64.data.map((d) => d.index), [0, 1]);
    assert.ok(b64.usage.prompt_tokens > 0);
    for (const [i, d] of b64.data.entries()) {
      const want = floats.data[i].embedding;
      assert.ok(want.length > 0);
      assert.equal(d.embedding.length, want.length);
      // base64 carries float32: equal to the floats within float32 precision.
      d.embedding.forEach((v, j) => assert.ok(Math.abs(v - want[j]) <= 1e-6 * Math.max(1, Math.abs(want[j])), `dimension ${j}: ${v} vs ${want[j]}`));
    }
  });

  it('lists and retrieves models', async () => {
    const ids = new Set();
    for await (const m of env.client.models.list()) ids.add(m.id);
    for (const want of ['chat', 'claude', 'embed', 'sim/fast', 'claude/claude-sim']) {
      assert.ok(ids.has(want), `models list lacks ${want}: ${[...ids]}`);
    }
    const m = await env.client.models.retrieve('sim/fast');
    assert.equal(m.id, 'sim/fast');
    assert.equal(m.owned_by, 'sim');
    await rejectsAs(env.client.models.retrieve('nope'), OpenAI.NotFoundError);
  });
});

describe('typed errors', bounded, () => {
  const ask = (c, model = 'chat') => c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });

  it('401 is an AuthenticationError', async () => {
    await rejectsAs(ask(env.clientFor('tg-not-a-key')), OpenAI.AuthenticationError, (err) => {
      assert.equal(err.status, 401);
    });
  });

  it('an unknown model is a NotFoundError', async () => {
    await rejectsAs(ask(env.client, 'no-such-model'), OpenAI.NotFoundError, (err) => {
      assert.equal(err.code, 'model_not_found');
    });
  });

  it('a key past its rpm gets a RateLimitError', async () => {
    const limited = env.clientFor(await env.fleet.createKey({ name: 'node-rpm1', project: 'node', rpm: 1 }));
    await ask(limited);
    await rejectsAs(ask(limited), OpenAI.RateLimitError, (err) => {
      assert.equal(err.code, 'rpm_limit_exceeded');
      assert.ok(Number(err.headers.get('retry-after')) > 0, `retry-after ${err.headers.get('retry-after')}`);
    });
  });

  it('an overloaded provider is an InternalServerError with 503', async () => {
    await rejectsAs(ask(env.client, 'down'), OpenAI.InternalServerError, (err) => {
      assert.equal(err.status, 503);
    });
  });
});

describe('responses API', bounded, () => {

  it('creates a response', async () => {
    const res = await env.client.responses.create({ model: 'chat', instructions: 'Be brief.', input: 'Hello' });
    assert.equal(res.object, 'response');
    assert.equal(res.status, 'completed');
    assert.ok(res.output_text.startsWith(simMarker), res.output_text);
    assert.equal(res.usage.output_tokens, outputTokens);
    assert.ok(res.usage.input_tokens > 0);
  });

  it('streams typed events', async () => {
    const stream = await env.client.responses.create({ model: 'chat', input: 'Stream to me', stream: true });
    const types = [];
    let deltas = '';
    let completed;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') deltas += ev.delta;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    assert.ok(types.includes('response.output_text.delta'), types.join(' '));
    assert.ok(deltas.startsWith(simMarker), deltas);
    assert.equal(completed.output_text ?? completed.output[0].content[0].text, deltas);
    assert.equal(completed.usage.output_tokens, outputTokens);
  });

  it('accumulates a stream with the SDK helper', async () => {
    const stream = env.client.responses.stream({ model: 'chat', input: 'Stream to me' });
    let deltas = '';
    stream.on('response.output_text.delta', (ev) => { deltas += ev.delta; });
    // The helper builds its answer from the events (output_item.added,
    // content_part.added, the deltas), not from response.completed.
    const done = await stream.finalResponse();
    const text = done.output.filter((item) => item.type === 'message')
      .flatMap((item) => item.content).map((part) => part.text).join('');
    assert.ok(deltas.startsWith(simMarker), deltas);
    assert.equal(text, deltas);
  });

  it('calls a function tool and continues from previous_response_id', async () => {
    const tools = [{ type: 'function', name: 'get_weather', description: 'Weather in a city', parameters: weatherParameters, strict: true }];
    const first = await env.client.responses.create({ model: 'chat', input: 'Weather in Hangzhou?', tools });
    const call = first.output.find((item) => item.type === 'function_call');
    assert.ok(call, `no function_call in ${JSON.stringify(first.output)}`);
    assert.equal(call.name, 'get_weather');
    assert.equal(typeof JSON.parse(call.arguments).city, 'string');

    const second = await env.client.responses.create({
      model: 'chat', previous_response_id: first.id, tools,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"temp_c":21}' }],
    });
    assert.equal(second.previous_response_id, first.id);
    assert.ok(second.output_text.startsWith(simMarker), second.output_text);
  });

  it('streams function-call arguments', async () => {
    const tools = [{ type: 'function', name: 'get_weather', parameters: weatherParameters, strict: true }];
    const stream = await env.client.responses.create({ model: 'chat', input: 'Weather in Hangzhou?', tools, stream: true });
    let args = '';
    let completed;
    for await (const ev of stream) {
      if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    const call = completed.output.find((item) => item.type === 'function_call');
    assert.equal(call?.arguments, args);
    assert.equal(typeof JSON.parse(args).city, 'string');
  });

  it('keeps a conversation by previous_response_id, then retrieves and deletes it', async () => {
    const first = await env.client.responses.create({ model: 'chat', input: 'Remember the word tide.' });
    const second = await env.client.responses.create({ model: 'chat', input: 'Which word?', previous_response_id: first.id });
    assert.equal(second.previous_response_id, first.id);
    assert.ok(second.output_text.startsWith(simMarker));
    // The follow-up's prompt carries the stored turn, so it is the longer one.
    assert.ok(second.usage.input_tokens > first.usage.input_tokens, `${second.usage.input_tokens} <= ${first.usage.input_tokens}`);

    const got = await env.client.responses.retrieve(first.id);
    assert.equal(got.id, first.id);
    assert.equal(got.output_text, first.output_text);
    await env.client.responses.delete(first.id);
    await rejectsAs(env.client.responses.retrieve(first.id), OpenAI.NotFoundError);
  });

  it('does not keep a response sent with store: false', async () => {
    const res = await env.client.responses.create({ model: 'chat', input: 'Forget me', store: false });
    await rejectsAs(env.client.responses.retrieve(res.id), OpenAI.NotFoundError);
  });
});
