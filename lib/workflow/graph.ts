import type { AslDefinition, AslState } from './compile.js';

/**
 * Renders a compiled state machine as a Mermaid flowchart: one node per state (Map iterators and
 * Parallel branches as subgraphs), solid edges for Next/Choices/Default, dashed edges for Catch.
 */
export function toMermaid(def: AslDefinition): string {
  const lines = ['flowchart TD'];
  const ids = new Map<string, string>();
  const id = (name: string) => {
    let v = ids.get(name);
    if (!v) {
      v = `s${ids.size}`;
      ids.set(name, v);
    }
    return v;
  };
  const label = (s: string) => s.replace(/"/g, "'");

  const walk = (states: Record<string, AslState>, indent: string) => {
    for (const [name, state] of Object.entries(states)) {
      const shape =
        state.Type === 'Choice'
          ? `{"${label(name)}"}`
          : state.Type === 'Succeed' || state.Type === 'Fail'
            ? `(["${label(name)}"])`
            : `["${label(name)}"]`;
      const proc = (state.ItemProcessor ?? state.Iterator) as { StartAt: string; States: Record<string, AslState> } | undefined;
      const branches = state.Branches as Array<{ StartAt: string; States: Record<string, AslState> }> | undefined;
      if (proc || branches) {
        lines.push(
          `${indent}subgraph ${id(name)}["${label(name)} (${state.Type}${state.MaxConcurrency ? `, max ${state.MaxConcurrency}` : ''})"]`,
        );
        for (const b of branches ?? [proc as { StartAt: string; States: Record<string, AslState> }]) {
          walk(b.States, `${indent}  `);
        }
        lines.push(`${indent}end`);
      } else {
        lines.push(`${indent}${id(name)}${shape}`);
      }
      if (typeof state.Next === 'string') lines.push(`${indent}${id(name)} --> ${id(state.Next)}`);
      for (const c of (state.Choices as Array<AslState & { Next: string }> | undefined) ?? []) {
        lines.push(`${indent}${id(name)} -->|${label(choiceLabel(c))}| ${id(c.Next)}`);
      }
      if (typeof state.Default === 'string') lines.push(`${indent}${id(name)} -->|no| ${id(state.Default)}`);
      for (const c of (state.Catch as Array<{ Next: string; ErrorEquals: string[] }> | undefined) ?? []) {
        lines.push(`${indent}${id(name)} -.->|${c.ErrorEquals.join(', ')}| ${id(c.Next)}`);
      }
    }
  };
  walk(def.States, '  ');
  return `${lines.join('\n')}\n`;
}

/** A Choice rule's edge label: the value a route compares (`billing`), else `yes`. */
function choiceLabel(rule: AslState): string {
  if (typeof rule.StringEquals === 'string') return rule.StringEquals;
  const inner = ((rule.And as AslState[] | undefined) ?? []).find((r) => typeof r.StringEquals === 'string');
  return typeof inner?.StringEquals === 'string' ? inner.StringEquals : 'yes';
}
