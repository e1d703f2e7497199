// The Vercel AI SDK's default OpenAI provider (@ai-sdk/openai: `openai(model)` calls /v1/responses).
// Usage: node ai_sdk_responses.mjs CASE BASE_URL MODEL; prints JSON.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, streamText } from "ai";
import { z } from "zod";

const [kase, baseURL, model] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey: "sk-compat" });
const prompt = "Say hello to the compatibility suite.";

const cases = {
  async generateText() {
    const result = await generateText({ model: openai(model), prompt, maxRetries: 0 });
    return { text: result.text, finishReason: result.finishReason };
  },
  async streamText() {
    const result = streamText({ model: openai(model), prompt, maxRetries: 0 });
    let text = "";
    for await (const part of result.textStream) text += part;
    return { text, finishReason: await result.finishReason };
  },
  async generateObject() {
    const result = await generateObject({
      model: openai(model),
      schema: z.object({ name: z.string(), age: z.number().int() }),
      prompt,
      maxRetries: 0,
    });
    return { object: result.object };
  },
};

console.log(JSON.stringify(await cases[kase]()));
