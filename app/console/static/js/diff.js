// A line diff (longest common subsequence): [["=", line] | ["-", line] | ["+", line], ...] turning a into b.
// Values are at most a few thousand lines, so the quadratic table is fine; past that, a plain replace.

export function diffLines(a, b) {
  const x = a === "" ? [] : a.split("\n");
  const y = b === "" ? [] : b.split("\n");
  if (x.length * y.length > 4_000_000) return [...x.map((l) => ["-", l]), ...y.map((l) => ["+", l])];
  const n = x.length;
  const m = y.length;
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      table[i][j] = x[i] === y[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push(["=", x[i]]);
      i += 1;
      j += 1;
    } else if (table[i + 1][j] >= table[i][j + 1]) {
      out.push(["-", x[i]]);
      i += 1;
    } else {
      out.push(["+", y[j]]);
      j += 1;
    }
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}
