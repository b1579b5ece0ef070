// A time series drawn by uPlot on a canvas (10k points stay cheap). Colours come from the page's
// CSS custom properties, so light and dark follow prefers-color-scheme.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface ChartProps {
  id: string;
  title: string;
  unit: string;
  /** x in ms since the epoch, y in `unit`. */
  xs: number[];
  ys: (number | null)[];
  /** Bars (e.g. spend per day) instead of a line. */
  bars?: boolean;
  /** The x range in ms (default: the data's own). */
  range?: [number, number];
}

export function TimeChart({ id, title, unit, xs, ys, bars, range }: ChartProps) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const style = getComputedStyle(el);
    const colour = (name: string) => style.getPropertyValue(name).trim();
    const axis = {
      stroke: colour('--fg-muted'),
      grid: { stroke: colour('--grid') },
      ticks: { stroke: colour('--grid') },
    };
    const plot = new uPlot(
      {
        width: Math.max(240, el.clientWidth),
        height: 180,
        legend: { show: false },
        cursor: { show: true, drag: { x: false, y: false } },
        scales: { x: range ? { time: true, range: [range[0] / 1000, range[1] / 1000] } : { time: true } },
        axes: [axis, { ...axis, label: unit, size: 60 }],
        series: [
          {},
          {
            label: title,
            stroke: colour('--series'),
            fill: bars ? colour('--series') : colour('--series-fill'),
            width: 2,
            paths: bars ? uPlot.paths.bars!({ size: [0.6, 40] }) : undefined,
            points: { show: xs.length < 3 },
          },
        ],
      },
      [xs.map((x) => x / 1000), ys],
      el,
    );
    return () => plot.destroy();
  }, [xs, ys, unit, title, bars, range?.[0]]);
  const last = ys.length ? ys[ys.length - 1] : null;
  return html`<figure class="chart">
    <figcaption>${title} <span class="muted">(${xs.length} points${last !== null ? `, last ${last} ${unit}` : ''})</span></figcaption>
    <div id=${id} ref=${ref} role="img" aria-label=${`${title}: ${xs.length} points`}></div>
  </figure>`;
}
