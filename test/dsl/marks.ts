// Test helper: write `⟨` in a policy snippet where a diagnostic must point; `marked`
// strips the marks and returns their 1-based line:col positions.
export function marked(src: string): { text: string; at: string[] } {
  const at: string[] = [];
  let line = 1;
  let col = 1;
  let text = '';
  for (const ch of src) {
    if (ch === '⟨') {
      at.push(`${line}:${col}`);
      continue;
    }
    text += ch;
    if (ch === '\n') {
      line++;
      col = 1;
    } else col += ch.length;
  }
  return { text, at };
}

export const HEAD = 'tier nas { local "/t" }\nfileset fs { root "/d" }\n';
