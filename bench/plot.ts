/**
 * An SVG plot of propagation latency: the cumulative share of agents that
 * have a release by time t, for the server and for the bare fan-out floor.
 */
export interface Series {
  label: string;
  color: string;
  /** Latencies in ms (one per agent and round). */
  samples: Float64Array;
}

export function cdfSvg(title: string, series: Series[], width = 720, height = 420): string {
  const margin = { left: 60, right: 20, top: 40, bottom: 50 };
  const w = width - margin.left - margin.right;
  const h = height - margin.top - margin.bottom;
  const maxX = Math.max(1, ...series.map((s) => s.samples.reduce((m, v) => (v > m ? v : m), 0))) * 1.05;
  const x = (ms: number): number => margin.left + (ms / maxX) * w;
  const y = (share: number): number => margin.top + (1 - share) * h;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14">${escape(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const ms = (maxX / 5) * i;
    out.push(`<line x1="${x(ms)}" y1="${margin.top}" x2="${x(ms)}" y2="${margin.top + h}" stroke="#eee"/>`);
    out.push(`<text x="${x(ms)}" y="${margin.top + h + 18}" text-anchor="middle">${ms.toFixed(0)}</text>`);
    const share = i / 5;
    out.push(`<line x1="${margin.left}" y1="${y(share)}" x2="${margin.left + w}" y2="${y(share)}" stroke="#eee"/>`);
    out.push(`<text x="${margin.left - 8}" y="${y(share) + 4}" text-anchor="end">${(share * 100).toFixed(0)}%</text>`);
  }
  out.push(`<text x="${margin.left + w / 2}" y="${height - 10}" text-anchor="middle">ms from the write to the agent's receipt</text>`);
  out.push(`<text transform="translate(16 ${margin.top + h / 2}) rotate(-90)" text-anchor="middle">agents with the release</text>`);
  series.forEach((s, i) => {
    const sorted = Float64Array.from(s.samples).sort();
    const step = Math.max(1, Math.floor(sorted.length / 400));
    const points: string[] = [`${x(0)},${y(0)}`];
    for (let j = 0; j < sorted.length; j += step) points.push(`${x(sorted[j]).toFixed(1)},${y((j + 1) / sorted.length).toFixed(1)}`);
    if (sorted.length) points.push(`${x(sorted[sorted.length - 1]).toFixed(1)},${y(1)}`);
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.join(' ')}"/>`);
    out.push(`<rect x="${margin.left + 10}" y="${margin.top + 10 + i * 18}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${margin.left + 28}" y="${margin.top + 20 + i * 18}">${escape(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
