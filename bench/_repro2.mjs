import { openReadDatabase } from '../dist/src/db/schema.js';
import { sql } from 'kysely';
const db = openReadDatabase('/tmp/repro.db');
const now = Date.now(), since = new Date(Math.floor((now - 90*86400000)/3600000)*3600000).toISOString();
const firstDay = new Date(Math.ceil((now - 90*86400000)/86400000)*86400000).toISOString();
const lastDay = new Date(Math.floor(now/86400000)*86400000).toISOString();
const tests = {
  dailySums: `SELECT channel, model, sum(calls), total(cost_usd) FROM llm_usage_daily WHERE ts >= '${firstDay}' AND ts < '${lastDay}' GROUP BY 1,2`,
  dailyHist: `SELECT channel, model, sum(calls), kissmon_hist_agg(latency_hist) FROM llm_usage_daily WHERE ts >= '${firstDay}' AND ts < '${lastDay}' GROUP BY 1,2`,
  edgeHourly: `SELECT count(*) FROM llm_usage_hourly WHERE ts >= '${since}' AND ts < '${firstDay}'`,
  edgeHourly2: `SELECT count(*) FROM llm_usage_hourly WHERE ts >= '${lastDay}'`,
  unionCount: `SELECT count(*) FROM (SELECT ts, calls FROM llm_usage_daily WHERE ts >= '${firstDay}' AND ts < '${lastDay}' UNION ALL SELECT ts, calls FROM llm_usage_hourly WHERE ts >= '${since}' AND ts < '${firstDay}')`,
};
for (const [k, q] of Object.entries(tests)) { const t = performance.now(); const r = await sql.raw(q).execute(db); console.log(k, Math.round(performance.now()-t), 'ms', JSON.stringify(r.rows[0]).slice(0,80)); }
const plan = await sql.raw(`EXPLAIN QUERY PLAN SELECT channel, model, sum(calls) FROM (SELECT ts, channel, model, calls FROM llm_usage_daily WHERE ts >= '${firstDay}' AND ts < '${lastDay}' UNION ALL SELECT ts, channel, model, calls FROM llm_usage_hourly WHERE ts >= '${since}' AND ts < '${firstDay}') GROUP BY 1,2`).execute(db);
console.log(plan.rows.map(r=>r.detail));
await db.destroy();
