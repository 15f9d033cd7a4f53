import { ApplyGuardrailCommand, type ApplyGuardrailResponse, type BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { Guardrail, GuardrailIntervention, GuardrailResult, GuardrailSource } from '../core/guardrails.js';

/** Bedrock's actions that stop the text, as opposed to masking it. */
const BLOCKING = new Set(['BLOCKED']);

/**
 * The interventions Bedrock reported, one per topic, filter, word and PII type that acted
 * (`action` other than `NONE`), by name only: the matched text is never kept.
 */
function interventionsOf(r: ApplyGuardrailResponse): GuardrailIntervention[] {
  const out: GuardrailIntervention[] = [];
  const add = (policy: GuardrailIntervention['policy'], name: string | undefined, action: string | undefined, detected?: boolean) => {
    if (!action || action === 'NONE' || detected === false) return;
    out.push({ policy, name: name ?? 'unnamed', action: BLOCKING.has(action) ? 'blocked' : 'masked' });
  };
  for (const a of r.assessments ?? []) {
    for (const t of a.topicPolicy?.topics ?? []) add('topic', t.name, t.action, t.detected);
    for (const f of a.contentPolicy?.filters ?? [])
      add(f.type === 'PROMPT_ATTACK' ? 'prompt-attack' : 'content', f.type, f.action, f.detected);
    for (const w of a.wordPolicy?.customWords ?? []) add('word', 'custom word', w.action, w.detected);
    for (const w of a.wordPolicy?.managedWordLists ?? []) add('word', w.type, w.action, w.detected);
    for (const p of a.sensitiveInformationPolicy?.piiEntities ?? []) add('pii', p.type, p.action, p.detected);
    for (const x of a.sensitiveInformationPolicy?.regexes ?? []) add('pii', x.name, x.action, x.detected);
  }
  return out;
}

/**
 * {@link Guardrail} on Amazon Bedrock Guardrails: `ApplyGuardrail` (`POST
 * /guardrail/{id}/version/{version}/apply`) with the text as one content block. `GUARDRAIL_INTERVENED`
 * with a blocking assessment blocks; otherwise the masked output Bedrock returns is the text to use.
 * The role needs `bedrock:ApplyGuardrail` on the guardrail's ARN.
 * Source: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ApplyGuardrail.html (read 2026-11).
 *
 * @throws the SDK's error (a wrong guardrail id or version, throttling): the caller decides
 * @example new BedrockGuardrail(new BedrockRuntimeClient({}), { id: 'gr-abc123', version: '1' })
 */
export class BedrockGuardrail implements Guardrail {
  constructor(
    private readonly client: BedrockRuntimeClient,
    private readonly guardrail: { readonly id: string; readonly version: string },
  ) {}

  async apply(source: GuardrailSource, text: string): Promise<GuardrailResult> {
    const r = await this.client.send(
      new ApplyGuardrailCommand({
        guardrailIdentifier: this.guardrail.id,
        guardrailVersion: this.guardrail.version,
        source,
        content: [{ text: { text } }],
      }),
    );
    if (r.action !== 'GUARDRAIL_INTERVENED') return { intervened: false, blocked: false, text, interventions: [] };
    const interventions = interventionsOf(r);
    const masked = (r.outputs ?? []).map((o) => o.text ?? '').join('');
    // Intervened with nothing that only masks, or masked with no output to use: blocked (never the unmasked text).
    const blocked = interventions.length === 0 || interventions.some((i) => i.action === 'blocked') || masked === '';
    return { intervened: true, blocked, text: blocked ? '' : masked, interventions };
  }
}
