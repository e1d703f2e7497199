// The Vercel AI SDK through @ai-sdk/openai-compatible. Usage: node ai_sdk.mjs CASE BASE_URL MODEL.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateObject, generateText, streamText } from "ai";
import { z } from "zod";

const [kase, baseURL, model] = process.argv.slice(2);
const provider = createOpenAICompatible({
  name: "guardproxy", baseURL, apiKey: "sk-compat", supportsStructuredOutputs: true, includeUsage: true,
});
const prompt = "Say hello to the compatibility suite.";

const cases = {
  async generateText() {
    const result = await generateText({ model: provider(model), prompt, maxRetries: 0 });
    return { text: result.text, finishReason: result.finishReason };
  },
  async streamText() {
    const result = streamText({ model: provider(model), prompt, maxRetries: 0 });
    let text = "";
    for await (const part of result.textStream) text += part;
    return { text, finishReason: await result.finishReason };
  },
  async generateObject() {
    const result = await generateObject({
      model: provider(model),
      schema: z.object({ name: z.string(), age: z.number().int() }),
      prompt,
      maxRetries: 0,
    });
    return { object: result.object };
  },
};

console.log(JSON.stringify(await cases[kase]()));
