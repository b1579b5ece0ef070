import { openWriteDatabase, openReadDatabase } from '../dist/src/db/schema.js';
import { emptyHistogram, encode, bucketOf } from '../dist/src/llm/histogram.js';
import { usageReport } from '../dist/src/llm/report.js';
import { sql } from 'kysely';
import { rmSync } from 'node:fs';
const path = '/tmp/repro.db'; rmSync(path, { force: true });
const h = await openWriteDatabase(path, { busyTimeoutMs: 100 });
const mk = (t) => h.sqlite.prepare(`INSERT INTO ${t} VALUES (?, ?, ?, ?, 'p', 'ok', 5,1,1,1,1,1,0,5,1,1,1,?)`);
const ih = mk('llm_usage_hourly'), id = mk('llm_usage_daily');
const hist = emptyHistogram(); for (let k=0;k<5;k++) hist[bucketOf(150 + k*700)] += 1; const blob = encode(hist);
const end = Math.floor(Date.now()/3600000)*3600000, start = end - 90*86400000;
h.sqlite.transaction(() => {
  for (let t = start; t < end; t += 3600000) for (let c = 0; c < 200; c++) for (let k = 0; k < 4; k++) ih.run(new Date(t).toISOString(), 'ch_'+c, 'm'+((c+(k>>1))%6), 'f'+(k&1), blob);
  for (let t = start; t < end; t += 86400000) for (let c = 0; c < 200; c++) for (let k = 0; k < 4; k++) id.run(new Date(Math.floor(t/86400000)*86400000).toISOString(), 'ch_'+c, 'm'+((c+(k>>1))%6), 'f'+(k&1), blob);
})();
await h.db.destroy();
const db = openReadDatabase(path);
const since = Date.now() - 90*86400000;
for (let i = 0; i < 3; i++) { const t = performance.now(); const r = await usageReport(db, { sinceMs: since, by: ['channel','model'] }); console.log('report', Math.round(performance.now()-t), 'ms', r.rows.length); }
const q = `SELECT ts FROM llm_usage_hourly WHERE ts >= '${new Date(since).toISOString()}' AND ts < '2026-09-05T00:00:00.000Z'`;
console.log((await sql.raw('EXPLAIN QUERY PLAN ' + q).execute(db)).rows);
await db.destroy();
